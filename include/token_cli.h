/*
 * token_cli.h - `seatcast token`: mint an HS256 development token with the
 * configured secret
 */
#ifndef SC_TOKEN_CLI_H
#define SC_TOKEN_CLI_H

/* Runs the subcommand; argv[0] is "token".  Returns the exit status. */
int sc_token_main(int argc, char **argv);

#endif /* SC_TOKEN_CLI_H */
