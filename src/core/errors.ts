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

/**
 * A configuration file or flag that cannot be used (config.yaml, --store). The CLI prints
 * its message on one line and exits 2. `code` is `config` unless a subclass names its case.
 */
export class ConfigError extends AgentQueueError {
  constructor(message: string, code = 'config') {
    super(code, message);
  }
}

/**
 * A store whose schema was written by a newer agentq (code `store_too_new`): this agentq
 * refuses it rather than run on a schema it does not know. Nothing in the store is changed.
 */
export class StoreTooNewError extends ConfigError {
  /** The store's schema version. */
  readonly storeVersion: number;
  /** The newest schema version this agentq knows. */
  readonly knownVersion: number;
  /** @param where the store's file, or its URL without credentials, named in the message */
  constructor(where: string, storeVersion: number, knownVersion: number) {
    super(`store ${where}: schema ${storeVersion} is newer than this agentq (${knownVersion}); upgrade agentq`, 'store_too_new');
    this.storeVersion = storeVersion;
    this.knownVersion = knownVersion;
  }
}

/** Something asked for a task id or name that the store does not hold. */
export class NotFoundError extends AgentQueueError {
  constructor(message: string) {
    super('not_found', message);
  }
}

/**
 * A subtask refused because its parent already has `max_subtasks` subtasks (code
 * `subtask_limit`, config `max_subtasks`): nothing is created. Raised by the store inside
 * the creating transaction, so two agents filing at once never pass the limit together.
 */
export class SubtaskLimitError extends AgentQueueError {
  /** The parent's id. */
  readonly parentId: number;
  /** The limit in force (`max_subtasks`). */
  readonly limit: number;
  /** @param parent the parent task (id and name, for the message) */
  constructor(parent: { id: number; name: string }, limit: number) {
    super(
      'subtask_limit',
      `max_subtasks: task ${parent.id} "${parent.name}" already has ${limit} subtask${limit === 1 ? '' : 's'}, the most one task may have (config max_subtasks ${limit}); this one was not created`,
    );
    this.parentId = parent.id;
    this.limit = limit;
  }
}
