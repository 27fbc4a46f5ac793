/* sealmail-vault: the store. See `sealmail-vault --help`. */
#include "vault-cli.h"

int main(int argc, char **argv)
{
	return vault_cli_main(argc, argv);
}
