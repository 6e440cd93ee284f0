/**
 * Whether a process tree is working: what the stall watchdog (src/scheduler/stall.ts) reads
 * to tell a tool command that is still busy (a test suite printing, a build compiling) from
 * one that hangs (`sleep 3600`, a prompt waiting for input).
 *
 * A sample reads `/proc`: every process's `stat` once (parent links, to find the tree), and
 * for each process of the tree its CPU time (`utime + stime + cutime + cstime`: its own and
 * that of the children it has reaped) and the bytes it wrote (`wchar` of `/proc/<pid>/io`,
 * which also counts its reaped children's). Processes are told apart by pid and start time,
 * so a reused pid is a new process. Linux only: elsewhere a sample is empty and nothing
 * counts as work.
 */
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

/** One process's counters in a {@link TreeSample}. */
export interface ProcessCounters {
  /** CPU time used, clock ticks (own and reaped children's, user and system). */
  cpuTicks: number;
  /** Bytes written (`wchar`: files, pipes, terminals; reaped children's included); 0 when `/proc/<pid>/io` cannot be read. */
  writtenBytes: number;
}

/** The counters of a tree's live processes, keyed `pid:startTime`. */
export type TreeSample = Map<string, ProcessCounters>;

interface StatLine {
  pid: number;
  ppid: number;
  state: string;
  startTime: number;
  cpuTicks: number;
}

/** Parses `/proc/<pid>/stat` (the command name may hold spaces and parentheses). */
function parseStat(text: string): StatLine | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number.parseInt(text, 10);
  // fields[0] is field 3 of proc(5): state; ppid 4, utime 14, stime 15, cutime 16, cstime 17, starttime 22.
  const f = text.slice(close + 2).split(' ');
  const n = (i: number) => Number(f[i]);
  const line = { pid, ppid: n(1), state: f[0] ?? '', startTime: n(19), cpuTicks: n(11) + n(12) + n(13) + n(14) };
  return Number.isInteger(line.pid) && Number.isInteger(line.ppid) && Number.isFinite(line.cpuTicks) ? line : null;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** `wchar` of `/proc/<pid>/io`; 0 when it cannot be read (another user's process, gone). */
function writtenBytes(pid: number): number {
  const m = /^wchar:\s*(\d+)$/m.exec(readText(`/proc/${pid}/io`) ?? '');
  return m ? Number(m[1]) : 0;
}

/**
 * The counters of `root`'s descendants (found through `/proc` parent links), and of `root`
 * itself with `includeRoot`. Zombies are left out. Empty when `root` is gone or `/proc` cannot
 * be read. Never throws.
 * @param root pid of the tree's root (an agent's process)
 * @param o.includeRoot whether the root's own counters are part of the sample (default false)
 */
export async function sampleTree(root: number, o: { includeRoot?: boolean } = {}): Promise<TreeSample> {
  const sample: TreeSample = new Map();
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return sample;
  }
  const children = new Map<number, StatLine[]>();
  let rootLine: StatLine | null = null;
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const text = readText(`/proc/${name}/stat`);
    const line = text === null ? null : parseStat(text);
    if (line === null || line.state === 'Z' || line.state === 'X') continue;
    if (line.pid === root) rootLine = line;
    const list = children.get(line.ppid);
    if (list) list.push(line);
    else children.set(line.ppid, [line]);
  }
  if (rootLine === null) return sample;
  const add = (line: StatLine) => sample.set(`${line.pid}:${line.startTime}`, { cpuTicks: line.cpuTicks, writtenBytes: writtenBytes(line.pid) });
  if (o.includeRoot) add(rootLine);
  const queue = [root];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const pid = queue.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    for (const child of children.get(pid) ?? []) {
      add(child);
      queue.push(child.pid);
    }
  }
  return sample;
}

/**
 * Whether the tree did work between two samples: a process in both used CPU time or wrote
 * bytes, or a process new in `after` already has (a command that started and is busy). A
 * tree whose processes only wait (`sleep`, a read on a terminal) did none; nor did processes
 * that only came and went quietly.
 */
export function treeWorked(before: TreeSample, after: TreeSample): boolean {
  for (const [key, now] of after) {
    const then = before.get(key);
    if (then === undefined) {
      if (now.cpuTicks > 0 || now.writtenBytes > 0) return true;
    } else if (now.cpuTicks > then.cpuTicks || now.writtenBytes > then.writtenBytes) return true;
  }
  return false;
}
