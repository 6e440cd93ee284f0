/**
 * One error base class with a string `code`, and subclasses that tell the scheduler what
 * to do with the attempt that raised them.
 */

/** Base of every error agent-queue raises on purpose. `code` is stable and machine-readable. */
export class AgentQueueError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad command-line usage: the CLI prints usage and exits 2. */
export class UsageError extends AgentQueueError {
  constructor(message: string) {
    super('usage', message);
  }
}

/**
 * A task file or spec that cannot run. `field` names the offending frontmatter field
 * (or `name`, `prompt`, `frontmatter`, `encoding`), `value` the value that was refused. The task ends `invalid`.
 */
export class InvalidTaskError extends AgentQueueError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('invalid_task', message);
    this.field = field;
  }
}

/** A configuration file or flag that cannot be used (config.yaml, --store). */
export class ConfigError extends AgentQueueError {
  constructor(message: string) {
    super('config', message);
  }
}

/** Something asked for a task id or name that the store does not hold. */
export class NotFoundError extends AgentQueueError {
  constructor(message: string) {
    super('not_found', message);
  }
}
