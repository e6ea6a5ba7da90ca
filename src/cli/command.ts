// What every CLI command gets: its arguments, the config file named on the command line, the environment.

export interface CommandContext {
  args: string[];
  configFile: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  out: (text: string) => void;
}

/** A command-line mistake: printed as one line with the command's usage, exit status 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(
    message: string,
    readonly help: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}
