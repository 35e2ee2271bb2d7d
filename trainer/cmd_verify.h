/* `moda verify`: check every file of a registry, or of one of its models,
 * as the loader does (sizes, sha256, decompression, safetensors structure,
 * tensor shapes against the architecture). argv[1] is the subcommand.
 * Return the process exit code: 0, 1 (a problem found) or 2 (usage). */
#ifndef MODA_CMD_VERIFY_H
#define MODA_CMD_VERIFY_H

int cmd_verify(int argc, char **argv);

#endif
