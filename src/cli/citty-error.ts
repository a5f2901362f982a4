// citty throws its own CLIError for missing arguments and bad enum values but does not export the class;
// it is recognised by name.
export class CLIError extends Error {
  static override [Symbol.hasInstance](e: unknown): boolean {
    return e instanceof Error && e.name === "CLIError";
  }
}
