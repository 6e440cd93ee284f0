/**
 * The CLI's tables (src/cli/output.ts): sized by a loop over the cells, so a table of any
 * length renders (a spread of every cell into `Math.max` overflowed the stack at ~130k rows),
 * and a task table printed page by page keeps its columns.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { table, taskRows, taskTablePages } from '../../src/cli/output.ts';
import type { Task } from '../../src/core/types.ts';

const task = (id: number, name: string): Task =>
  ({ id, name, state: 'queued', priority: 'default', agent: 'command', claims: 0, durationMs: null, stats: { costUsd: null }, failedReason: null }) as unknown as Task;

describe('CLI tables', () => {
  it('renders 300k rows', () => {
    const rows = Array.from({ length: 300_000 }, (_, i) => [String(i), i === 123_456 ? 'the longest cell' : 'x']);
    const lines = table(['N', 'V'], rows).split('\n');
    assert.equal(lines.length, 300_001);
    assert.equal(lines[0], `N       V`);
    assert.equal(lines[123_457], `123456  the longest cell`);
  });

  it('page by page: the header once, columns as wide as the widest cell so far', () => {
    const pages = taskTablePages();
    const first = pages([task(12, 'a'), task(11, 'bb')]);
    const second = pages([task(10, 'a-much-longer-name'), task(9, 'c')]);
    assert.equal(first, taskRows([task(12, 'a'), task(11, 'bb')]), 'the first page is the table of its tasks');
    const lines = second.split('\n');
    assert.equal(lines.length, 2, 'no header again');
    assert.match(lines[0]!, /^10  queued  default   command  a-much-longer-name  0$/);
    assert.match(lines[1]!, /^9   queued  default   command  c                   0$/);
  });
});
