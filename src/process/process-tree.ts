/**
 * Finding and stopping the processes an agent attempt leaves behind.
 *
 * An attempt's processes are found three ways, because no single one is enough:
 * - the process group the agent leads (`detached: true` spawn): covers plain `cmd &` jobs;
 * - the descendant tree (`pidtree`, i.e. `ps`): covers children that changed group or
 *   session while their parent is still alive;
 * - the `AGENTQ_ATTEMPT_ID` tag in `/proc/<pid>/environ`: covers commands that escaped with
 *   `setsid` (Claude Code's Bash tool does this for every command) and were reparented to
 *   init after the agent died, so they are neither in the group nor descendants any more.
 *   A process that clears its environment (`env -i`) before escaping cannot be found.
 *
 * Liveness: a zombie counts as gone (it holds no resources but a pid, and an orphaned zombie
 * is reaped by init, not by us), and so does a pid whose start time changed (reused pid).
 * Linux only for tags, zombies and start times (`/proc`); elsewhere these degrade to
 * `kill(pid, 0)` checks and tag searches find nothing.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The environment variable every agent process is tagged with (value: the attempt id). */
export const ATTEMPT_ID_ENV = 'AGENTQ_ATTEMPT_ID';

/** What `/proc/<pid>/stat` tells about one process. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Session id. */
  sid: number;
  /** One-letter state: R, S, D, Z (zombie), T, X (dead), … */
  state: string;
  /** Start time in clock ticks since boot; with `pid` it identifies a process across pid reuse. */
  startTime: number;
}

/** A process found by its `AGENTQ_ATTEMPT_ID` tag. */
export interface TaggedProcess {
  pid: number;
  /** The value of `AGENTQ_ATTEMPT_ID` in its environment. */
  tag: string;
}

/**
 * The processes to stop. Every field is optional; they are combined. The live descendants
 * of every target found (through `/proc` parent links) are stopped too.
 */
export interface StopTargets {
  /** Processes to stop (ignored if already gone when the stop starts). */
  pids?: readonly number[];
  /** Process groups to signal as a whole (`kill(-pgid)`); every live member is waited for. */
  processGroups?: readonly number[];
  /** Roots whose descendants (found with `pidtree`, and via `/proc` parent links) are stopped too. The roots themselves are not, unless listed in `pids`. */
  descendantsOf?: readonly number[];
  /** Processes whose `AGENTQ_ATTEMPT_ID` value satisfies this predicate. */
  tagged?: (tag: string) => boolean;
  /** Only processes whose /proc start time (clock ticks) is at least this can match `tagged`. */
  taggedStartedFrom?: number;
  /**
   * Every target was created after this mark ({@link markProcessCreation}, taken before the
   * agent was spawned): the scan then reads only the processes created since (see
   * {@link createdSince}) instead of every process on the system. Ignored when that set
   * cannot be told (too many processes created since, no `/proc`), and for `pids`.
   */
  createdAfter?: CreationMark | null;
}

/**
 * Where the system's process creation stood at one moment ({@link markProcessCreation}).
 * Linux hands out pids in a cycle (`idr_alloc_cyclic`: the next free pid after the last one,
 * wrapping at `pid_max`), so a process created later has a pid after `lastPid` in that cycle,
 * as long as the cycle has not come round again; `forks` and `threads` bound how far it went.
 */
export interface CreationMark {
  /** The pid allocated last in our pid namespace (`/proc/loadavg`, 5th field). */
  lastPid: number;
  /** Processes and threads created on the system since boot (`/proc/stat` `processes`). */
  forks: number;
  /** Threads existing then (`/proc/loadavg`, 4th field after the slash): pids the cycle may skip. */
  threads: number;
}

/** What `stopProcesses` may be given: pids, a tag predicate, or a combination. */
export type StopTarget = readonly number[] | ((tag: string) => boolean) | StopTargets;

/** Tuning for `stopProcesses`. */
export interface StopOptions {
  /** Longest pause between liveness polls, ms. Default 100. Polls start at 10 ms and back off. */
  pollMs?: number;
  /** How long to wait after SIGKILL before giving up on processes that still exist (e.g. stuck in uninterruptible sleep), ms. Default 5000. */
  killWaitMs?: number;
}

/** What `stopProcesses` did. */
export interface StopReport {
  /** Pids sent SIGTERM. */
  terminated: number[];
  /** Pids sent SIGKILL (still alive after the grace period). */
  killed: number[];
  /** Pids still alive when it gave up (`killWaitMs` after SIGKILL); normally empty. */
  survivors: number[];
}

const HAS_PROC = (() => {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Whether `/proc` shows our pid namespace (a `/proc` mounted from another namespace lists
 * other pids than `/proc/loadavg`'s last pid counts in): only then can a {@link CreationMark} be used.
 */
const PROC_IS_OURS = (() => {
  if (!HAS_PROC) return false;
  try {
    return readlinkSync('/proc/self') === String(process.pid);
  } catch {
    return false;
  }
})();

/** Our own process group, never signalled as a group. */
const OWN_PGID: number | null = HAS_PROC ? (parseStat(safeReadSync(`/proc/${process.pid}/stat`) ?? '')?.pgid ?? null) : null;

function safeReadSync(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Parses `/proc/<pid>/stat`; the command name may contain spaces and parentheses. */
function parseStat(text: string): ProcessInfo | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number.parseInt(text, 10);
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 of proc(5): state; ppid 4, pgrp 5, session 6, starttime 22.
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  const sid = Number(fields[3]);
  const startTime = Number(fields[19]);
  if (state === undefined || !Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isInteger(pgid)) return null;
  return { pid, ppid, pgid, sid, state, startTime };
}

function isDeadState(state: string): boolean {
  return state === 'Z' || state === 'X' || state === 'x';
}

/**
 * Reads `/proc/<pid>/stat`. Returns null when the process does not exist, cannot be read,
 * or `/proc` is unavailable. Never throws.
 */
export function readProcessInfo(pid: number): ProcessInfo | null {
  if (!HAS_PROC) return null;
  const text = safeReadSync(`/proc/${pid}/stat`);
  return text === null ? null : parseStat(text);
}

/**
 * Whether `pid` is a live process: it exists (even if owned by another user) and is not a
 * zombie. Never throws; false for pids ≤ 0.
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!HAS_PROC) return true;
  const info = readProcessInfo(pid);
  return info !== null && !isDeadState(info.state);
}

/**
 * All descendants of `pid` (children, grandchildren, …), found with the `pidtree` package
 * (which runs `ps -A -o ppid,pid`). Does not include `pid` itself. Zombies are included.
 * Resolves to [] when `pid` does not exist. A process that was reparented (its parent died)
 * is no longer a descendant.
 *
 * @throws Error from `pidtree` when `ps` cannot be run (e.g. not installed in slim images).
 */
export async function findDescendants(pid: number): Promise<number[]> {
  try {
    const { default: pidtree } = await import('pidtree'); // loaded by the first stop, not by an idle dispatcher
    return await pidtree(pid);
  } catch (err) {
    if (err instanceof Error && /no matching pid/i.test(err.message)) return [];
    throw err;
  }
}

/** Reads one process's `AGENTQ_ATTEMPT_ID`, or null when untagged, gone or unreadable. */
async function readTag(pid: number): Promise<string | null> {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return null;
  }
  const prefix = `${ATTEMPT_ID_ENV}=`;
  for (const entry of env.toString('utf8').split('\0')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  }
  return null;
}

async function listPids(): Promise<number[]> {
  let names: string[];
  try {
    // One getdents on the event loop is cheaper than a thread-pool round trip.
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) if (/^\d+$/.test(name)) pids.push(Number(name));
  return pids;
}

/**
 * The processes whose `AGENTQ_ATTEMPT_ID` environment value satisfies `match`, found by
 * scanning `/proc/<pid>/environ` (the environment each process was exec'd with). Skips our
 * own process, zombies, and processes that vanish or cannot be read (other users' processes
 * when not root). Resolves to [] where `/proc` does not exist. Never rejects.
 */
export async function findTaggedProcesses(match: (tag: string) => boolean): Promise<TaggedProcess[]> {
  const found: TaggedProcess[] = [];
  await Promise.all(
    (await listPids()).map(async (pid) => {
      if (pid === process.pid) return;
      const tag = await readTag(pid);
      if (tag === null || !match(tag)) return;
      const info = readProcessInfo(pid);
      if (info === null || isDeadState(info.state)) return;
      found.push({ pid, tag });
    }),
  );
  return found.sort((a, b) => a.pid - b.pid);
}

/**
 * The process creation as it stands now, to hand to {@link stopProcesses} (`createdAfter`)
 * for processes created after this call: two reads of `/proc` (`loadavg`, `stat`), no scan.
 * Null without `/proc`, or when `/proc` is not our pid namespace's. Never throws.
 */
export function markProcessCreation(): CreationMark | null {
  if (!PROC_IS_OURS) return null;
  const loadavg = safeReadSync('/proc/loadavg');
  const stat = safeReadSync('/proc/stat');
  const load = loadavg === null ? null : /^\S+ \S+ \S+ \d+\/(\d+) (\d+)/.exec(loadavg);
  const forks = stat === null ? null : /^processes (\d+)$/m.exec(stat);
  if (!load || !forks) return null;
  return { lastPid: Number(load[2]), forks: Number(forks[1]), threads: Number(load[1]) };
}

/**
 * A test of "created after `mark`" on pids: true for the pids the kernel handed out since,
 * in its cycle from `mark.lastPid` to the last pid now. Null when it cannot be told: no mark
 * now, or so many processes created since (`forks`, each taking a pid, plus the pids in use
 * it skipped, at most `threads` + `forks`) that the cycle may have come round past
 * `mark.lastPid`, i.e. more than half of `pid_max` minus the 300 pids reserved at wrap.
 * Not covered: pids the cursor spent on forks that failed after taking one (a cgroup's
 * `pids.max`), a `ns_last_pid` write or `clone3` `set_tid` (both need privileges).
 */
export function createdSince(mark: CreationMark): ((pid: number) => boolean) | null {
  const window = creationWindow(mark);
  return window === null ? null : inWindow(window);
}

/** The test of a creation window ({@link creationWindow}) on pids. */
function inWindow({ from, to }: { from: number; to: number }): (pid: number) => boolean {
  if (to === from) return () => false;
  return to > from ? (pid) => pid > from && pid <= to : (pid) => pid > from || pid <= to;
}

/**
 * The pids handed out since `mark` ({@link createdSince}): those after `from` up to `to` in
 * the kernel's cycle (wrapped when `to` < `from`); null when that cannot be told.
 */
function creationWindow(mark: CreationMark): { from: number; to: number } | null {
  const now = markProcessCreation();
  const pidMax = Number(safeReadSync('/proc/sys/kernel/pid_max'));
  if (now === null || !Number.isInteger(pidMax) || pidMax <= 0) return null;
  const forks = now.forks - mark.forks;
  if (forks < 0 || 2 * forks + Math.max(mark.threads, now.threads) >= (pidMax - RESERVED_PIDS) / 2) return null;
  return { from: mark.lastPid, to: now.lastPid };
}

/** Pids below this are skipped when the kernel's pid cycle wraps (`RESERVED_PIDS`). */
const RESERVED_PIDS = 300;

/**
 * A creation window ({@link creationWindow}) of at most this many pids is read pid by pid
 * (`/proc/<pid>/stat`: one failed open for a pid not in use) instead of listing every process
 * (`/proc`'s readdir, which costs more than a handful of reads even on a quiet system).
 */
const PROBE_MAX = 64;

/**
 * Snapshot of the stat of every process, or only of those created since `since` (and the
 * pids in `include`) when that can be told ({@link createdSince}); null without `/proc`.
 */
async function snapshot(since: CreationMark | null = null, include: Iterable<number> = []): Promise<Map<number, ProcessInfo> | null> {
  if (!HAS_PROC) return null;
  const map = new Map<number, ProcessInfo>();
  const window = since === null ? null : creationWindow(since);
  let pids: Iterable<number>;
  if (window !== null && window.to >= window.from && window.to - window.from <= PROBE_MAX) {
    // Read directly: the window's pids (a thread's id among them is not a process) and `include`.
    const probed = new Set(include);
    for (let pid = window.from + 1; pid <= window.to; pid++) probed.add(pid);
    pids = [...probed].filter((pid) => pid > 0 && leadsItsThreadGroup(pid));
  } else {
    pids = await listPids();
    if (window !== null) {
      const created = inWindow(window);
      const extra = new Set(include);
      pids = (pids as number[]).filter((pid) => created(pid) || extra.has(pid));
    }
  }
  for (const pid of pids) {
    const text = safeReadSync(`/proc/${pid}/stat`);
    const info = text === null ? null : parseStat(text);
    if (info !== null) map.set(pid, info);
  }
  return map;
}

/**
 * Whether `pid` is a process (its thread group's leader, as `/proc`'s listing shows them),
 * not another thread's id (`/proc/<tid>` opens too); false when it does not exist.
 */
function leadsItsThreadGroup(pid: number): boolean {
  const status = safeReadSync(`/proc/${pid}/status`);
  const tgid = status === null ? null : /^Tgid:\s*(\d+)$/m.exec(status);
  return tgid !== null && Number(tgid[1]) === pid;
}

function normalizeTargets(target: StopTarget): StopTargets {
  if (typeof target === 'function') return { tagged: target };
  if (Array.isArray(target)) return { pids: target as readonly number[] };
  return target as StopTargets;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Stops processes and their descendants in stages: SIGTERM everything found, poll until it is gone, and after
 * `graceMs` SIGKILL whatever is left, then poll until that is gone too. Targets are looked
 * up again on every poll, so processes forked or escaped during the stop are caught (and
 * signalled as soon as they are seen). Zombies and vanished pids (ESRCH) count as gone;
 * pids whose start time changed (reused) are never signalled. Our own process and process
 * group, and pids ≤ 1, are never signalled.
 *
 * Resolves when every target is gone, or `options.killWaitMs` (default 5000 ms) after
 * SIGKILL with the stragglers in `survivors`. Never rejects (a failing `ps` only loses the
 * `pidtree` lookup; `/proc` parent links still find descendants on Linux).
 *
 * @param target pids, a predicate on `AGENTQ_ATTEMPT_ID` values, or a `StopTargets` combination.
 * @param graceMs time between SIGTERM and SIGKILL, ms. Default 5000. 0 sends SIGKILL at once after SIGTERM.
 */
export async function stopProcesses(target: StopTarget, graceMs = 5000, options: StopOptions = {}): Promise<StopReport> {
  const targets = normalizeTargets(target);
  const maxPoll = Math.max(1, options.pollMs ?? 100);
  const killWaitMs = options.killWaitMs ?? 5000;
  const groups = (targets.processGroups ?? []).filter((g) => Number.isInteger(g) && g > 1 && g !== OWN_PGID);
  const roots = (targets.descendantsOf ?? []).filter((p) => Number.isInteger(p) && p > 0);

  /** pid → start time when first seen (null when unknown: no /proc). */
  const known = new Map<number, number | null>();
  /** `${pid}:${startTime}` → tag, so each environ is read once per stop. */
  const tagCache = new Map<string, string | null>();
  const terminated = new Set<number>();
  const killed = new Set<number>();
  let first = true;

  const remember = (pid: number, info: ProcessInfo | null | undefined): void => {
    if (pid <= 1 || pid === process.pid || known.has(pid)) return;
    // Already gone: never remember it, so a later process reusing the pid is not a target.
    if (HAS_PROC && (!info || isDeadState(info.state))) return;
    known.set(pid, info ? info.startTime : null);
  };

  /** Finds the targets and returns the pids alive now (plus groups alive without /proc). */
  const discover = async (usePidtree: boolean): Promise<{ pids: number[]; groupsAlive: number[] }> => {
    if (first) {
      for (const pid of targets.pids ?? []) if (Number.isInteger(pid)) remember(pid, readProcessInfo(pid));
    }
    if (usePidtree) {
      for (const root of roots) {
        let descendants: number[] = [];
        try {
          descendants = await findDescendants(root);
        } catch {
          // `ps` unavailable: rely on /proc parent links below.
        }
        for (const pid of descendants) remember(pid, readProcessInfo(pid));
      }
    }
    const snap = await snapshot(targets.createdAfter ?? null, [...known.keys(), ...roots]);
    if (snap === null) {
      first = false;
      const pids = [...known.keys()].filter((pid) => isAlive(pid));
      const groupsAlive = groups.filter((g) => {
        try {
          process.kill(-g, 0);
          return true;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'EPERM';
        }
      });
      return { pids, groupsAlive };
    }
    const live = (info: ProcessInfo): boolean => !isDeadState(info.state);
    for (const info of snap.values()) {
      if (!live(info)) continue;
      if (groups.includes(info.pgid)) remember(info.pid, info);
    }
    if (targets.tagged) {
      const match = targets.tagged;
      await Promise.all(
        [...snap.values()].map(async (info) => {
          if (!live(info) || info.pid === process.pid) return;
          if (targets.taggedStartedFrom !== undefined && info.startTime < targets.taggedStartedFrom) return;
          const key = `${info.pid}:${info.startTime}`;
          let tag = tagCache.get(key);
          if (tag === undefined) {
            tag = await readTag(info.pid);
            tagCache.set(key, tag);
          }
          if (tag !== null && match(tag)) remember(info.pid, info);
        }),
      );
    }
    // Descendants through /proc parent links: of the roots and of every target found so far.
    const children = new Map<number, ProcessInfo[]>();
    for (const info of snap.values()) {
      const list = children.get(info.ppid);
      if (list) list.push(info);
      else children.set(info.ppid, [info]);
    }
    const queue = [...roots, ...known.keys()];
    const visited = new Set<number>();
    while (queue.length > 0) {
      const pid = queue.pop()!;
      if (visited.has(pid)) continue;
      visited.add(pid);
      // A known pid that was reused is not a parent of ours.
      const self = snap.get(pid);
      const startTime = known.get(pid);
      if (self && startTime !== undefined && startTime !== null && self.startTime !== startTime) continue;
      for (const child of children.get(pid) ?? []) {
        if (!live(child)) continue;
        remember(child.pid, child);
        queue.push(child.pid);
      }
    }
    first = false;
    const pids: number[] = [];
    for (const [pid, startTime] of known) {
      const info = snap.get(pid);
      if (!info || !live(info)) continue;
      if (startTime !== null && info.startTime !== startTime) continue;
      pids.push(pid);
    }
    return { pids, groupsAlive: [] };
  };

  const send = (pids: number[], groupsAlive: number[], signal: NodeJS.Signals, record: Set<number>, onlyNew: boolean): void => {
    // Signal groups first: atomic for the group, so members forked since the scan get it too.
    for (const g of new Set([...groups.filter((g) => pids.some((pid) => readProcessInfo(pid)?.pgid === g)), ...groupsAlive])) {
      try {
        process.kill(-g, signal);
      } catch {
        // ESRCH: the group is gone; EPERM: nothing we can do.
      }
    }
    for (const pid of pids) {
      if (onlyNew && record.has(pid)) continue;
      record.add(pid);
      try {
        process.kill(pid, signal);
      } catch {
        // ESRCH: gone already; EPERM: will show up as a survivor.
      }
    }
  };

  const report = (survivors: number[]): StopReport => ({
    terminated: [...terminated].sort((a, b) => a - b),
    killed: [...killed].sort((a, b) => a - b),
    survivors: survivors.sort((a, b) => a - b),
  });

  // Stage 1: SIGTERM, then poll for the grace period.
  let alive = await discover(true);
  if (alive.pids.length === 0 && alive.groupsAlive.length === 0) return report([]);
  send(alive.pids, alive.groupsAlive, 'SIGTERM', terminated, false);
  const termDeadline = Date.now() + Math.max(0, graceMs);
  let poll = 10;
  while (Date.now() < termDeadline) {
    await sleep(Math.min(poll, Math.max(1, termDeadline - Date.now())));
    poll = Math.min(maxPoll, poll * 2);
    alive = await discover(false);
    if (alive.pids.length === 0 && alive.groupsAlive.length === 0) return report([]);
    send(alive.pids, [], 'SIGTERM', terminated, true);
  }

  // Stage 2: SIGKILL what is left, and anything that appears, until all gone or we give up.
  alive = await discover(true);
  const killDeadline = Date.now() + Math.max(0, killWaitMs);
  poll = 10;
  for (;;) {
    if (alive.pids.length === 0 && alive.groupsAlive.length === 0) return report([]);
    send(alive.pids, alive.groupsAlive, 'SIGKILL', killed, false);
    if (Date.now() >= killDeadline) return report(alive.pids);
    await sleep(Math.min(poll, Math.max(1, killDeadline - Date.now())));
    poll = Math.min(maxPoll, poll * 2);
    alive = await discover(false);
  }
}
