/* compat.h: included LAST by every .c file in crypto/ (after system and library
 * headers, which declare the poisoned names themselves).
 * Poisons the unbounded string functions so they cannot creep back in: use
 * snprintf (and check its result for truncation) or struct sbuf instead. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC poison strcpy strcat sprintf vsprintf gets
