/* Minimal test harness: TEST() registers a function, main runs them all.
 * Each test_*.c includes this header once, defines TESTs, and links harness.c. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <inttypes.h>

typedef void (*test_fn)(void);
void harness_register(const char *name, test_fn fn);
extern int harness_failed;

#define TEST(name) \
	static void test_##name(void); \
	__attribute__((constructor)) static void reg_##name(void) \
	{ harness_register(#name, test_##name); } \
	static void test_##name(void)

#define FAIL_AT(...) do { \
	fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
	harness_failed = 1; return; } while (0)

#define ASSERT_TRUE(c) do { if (!(c)) FAIL_AT("assertion failed: %s", #c); } while (0)
#define ASSERT_INT_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) FAIL_AT("%s == %lld, expected %s == %lld", #a, a_, #b, b_); } while (0)
#define ASSERT_INT_NE(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ == b_) FAIL_AT("%s == %s == %lld", #a, #b, a_); } while (0)
#define ASSERT_INT_GE(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ < b_) FAIL_AT("%s == %lld < %s == %lld", #a, a_, #b, b_); } while (0)
#define ASSERT_MEM_EQ(a, b, n) do { if (memcmp((a), (b), (n)) != 0) \
	FAIL_AT("memory %s != %s (%zu bytes)", #a, #b, (size_t)(n)); } while (0)
#define ASSERT_STR_EQ(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) \
	FAIL_AT("%s == \"%s\", expected \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
