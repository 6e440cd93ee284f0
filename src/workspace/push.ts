/**
 * `workspace_push: REMOTE` (issue #10): after a worktree task ends with commits on its
 * branch, the dispatcher that ran it pushes the branch to a remote of its checkout, so the
 * machine the task came from can `git fetch` it.
 *
 * A push never forces and never touches another branch: `git push REMOTE
 * refs/heads/B:refs/heads/B`. A refusal by the remote (not a fast-forward: the remote's
 * branch of that name has commits this one lacks; a hook that declined) or a remote this
 * checkout does not have is final at once; anything else (the network, a remote path that
 * is gone, a try past its time limit) is tried again after 1 s, 2 s and 4 s. Either way the
 * branch stays in this checkout: the work is never lost, only not published.
 */
import { AgentQueueError } from '../core/errors.ts';
import { git, gitMessage, type GitResult } from './git.ts';

/** Waits between push tries, ms: four tries in all. */
export const PUSH_RETRY_DELAYS_MS: readonly number[] = [1000, 2000, 4000];
/** One push try is killed after this long, ms. */
export const PUSH_TIMEOUT_MS = 120_000;

/** What {@link pushBranch} did. */
export type PushOutcome =
  /** `pushedTo`: `REMOTE/BRANCH`, the remote-tracking name a fetch gives the branch. */
  | { ok: true; pushedTo: string; tries: number }
  /** `error`: one line, naming the remote, the branch and git's complaint; `final`: the remote refused (no try again would help). */
  | { ok: false; error: string; final: boolean; tries: number };

export interface PushOptions {
  /** A directory in the checkout (the project directory). */
  cwd: string;
  /** Local branch to push, e.g. `agentq/fix-typo`; pushed under the same name. */
  branch: string;
  /** Remote name, e.g. `origin` (config `workspace_push`). */
  remote: string;
  /** Waits between tries, ms. Default {@link PUSH_RETRY_DELAYS_MS}. */
  retryDelaysMs?: readonly number[];
  /** Time limit of one try, ms. Default {@link PUSH_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Called after a try that failed and will be tried again in `retryInMs` ms (for progress lines). */
  onRetry?: (error: string, retryInMs: number) => void;
}

/**
 * Pushes `branch` to `remote` as `refs/heads/<branch>` (no force, the repository's hooks
 * run, git spawned without a shell in agentq's sanitized git environment: see git.ts),
 * trying again on transient failures (see the module comment). Never throws for a failed
 * push: the outcome says why (`ok: false`); git missing is reported the same way.
 */
export async function pushBranch(opts: PushOptions): Promise<PushOutcome> {
  const { cwd, branch, remote } = opts;
  const delays = opts.retryDelaysMs ?? PUSH_RETRY_DELAYS_MS;
  const what = `git push ${remote} ${branch}`;
  try {
    const url = await git(cwd, ['remote', 'get-url', '--push', remote], { allowFail: true });
    if (url.code !== 0) {
      return { ok: false, final: true, tries: 0, error: `${what}: this checkout has no remote named "${remote}" (workspace_push; see git remote -v)` };
    }
    for (let tries = 1; ; tries++) {
      const r = await git(cwd, ['push', '--porcelain', remote, `refs/heads/${branch}:refs/heads/${branch}`], {
        allowFail: true,
        timeoutMs: opts.timeoutMs ?? PUSH_TIMEOUT_MS,
      });
      if (r.code === 0) return { ok: true, pushedTo: `${remote}/${branch}`, tries };
      const refused = refusal(r);
      const error = `${what}: ${refused ?? gitMessage(r)}`;
      const delay = delays[tries - 1];
      if (refused !== null || delay === undefined) return { ok: false, final: refused !== null, tries, error };
      opts.onRetry?.(error, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  } catch (err) {
    if (!(err instanceof AgentQueueError)) throw err;
    return { ok: false, final: true, tries: 0, error: `${what}: ${err.message}` };
  }
}

/**
 * The remote's refusal of the ref, from `--porcelain`'s `!` line (`[rejected]
 * (non-fast-forward)`, `[remote rejected] (pre-receive hook declined)`) with what the
 * remote said (`remote:` lines); null when git did not get that far (network, missing
 * repository, timeout).
 */
function refusal(r: GitResult): string | null {
  const line = r.stdout.split('\n').find((l) => l.startsWith('!\t'));
  if (!line) return null;
  const status = (line.split('\t')[2] ?? 'rejected').trim();
  const said = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('remote:'))
    .map((l) => l.slice('remote:'.length).trim())
    .filter(Boolean);
  const hint = /non-fast-forward|fetch first/.test(status)
    ? ' — the remote branch of that name has commits this one lacks (another task or attempt of the same name); not forced'
    : '';
  return `${status}${said.length ? ` (remote: ${said.join('; ')})` : ''}${hint}`;
}
