/* sealmail-keymgr: users, tokens and keys. See `sealmail-keymgr --help`. */
#include "keymgr.h"

int main(int argc, char **argv)
{
	return keymgr_main(argc, argv);
}
