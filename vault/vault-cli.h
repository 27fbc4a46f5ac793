/* The sealmail-vault command line (compiled into the program only). */
#pragma once

/* Runs one command; returns the exit status. `deliver` uses sysexits(3) codes so an
 * MTA can tell a bounce from a retry; every other command 0 ok, 1 error, 2 usage. */
int vault_cli_main(int argc, char **argv);
