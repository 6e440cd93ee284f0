/**
 * Fuzz of POST /v1/tasks: several hundred hostile bodies from a seeded PRNG (the same ones on
 * every run) — wrong types for every field, huge strings, `__proto__` / `constructor` /
 * `prototype` keys at several depths, deep nesting, bytes that are not UTF-8, truncated
 * JSON, wrong or missing content types, empty bodies, odd numbers, odd names — each sent to
 * the app on a real SQLite store. Every answer must be a 4xx with the error body (never a
 * 5xx, never a hang) and store nothing, or a 201 whose task is in the store as answered.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { TASK_NAME } from '../../src/config/task-file.ts';
import { ERROR_STATUS, type ErrorCode } from '../../src/server/errors.ts';
import { bodyFields } from '../../src/server/task-body.ts';
import { closeHarnesses, harness, post } from '../fixtures/server-app.ts';
import { prng } from '../fixtures/prng.ts';

after(closeHarnesses);

/** A JSON text fragment written as is (`-0`, `1e309`, keys a JS object could not hold such as `__proto__`). */
class Raw {
  constructor(readonly text: string) {}
}
/** An object as an ordered list of entries, so `__proto__` stays a plain key. */
class Obj {
  constructor(readonly entries: Array<[string, Json]>) {}
}
type Json = string | number | boolean | null | Json[] | Obj | Raw;

function toJson(v: Json): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Obj) return `{${v.entries.map(([k, e]) => `${JSON.stringify(k)}:${toJson(e)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  return JSON.stringify(v);
}

interface Case {
  kind: string;
  payload: string | Buffer;
  contentType: string | null;
  /** The name the body asks for, if a string: a 201 must carry exactly it. */
  name?: string;
}

const BODY_LIMIT = 64 * 1024;
const FIELDS = bodyFields();

function cases(seed: number): Case[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  const word = () => Array.from({ length: int(1, 10) }, () => pick('abcdefghijklmnopqrstuvwxyz0123456789'.split(''))).join('');
  const body = (entries: Array<[string, Json]>): Obj => new Obj(entries.some(([k]) => k === 'prompt') ? entries : [['prompt', `fuzz ${word()}`], ...entries]);
  const json = (kind: string, o: Obj, extra: Partial<Case> = {}): Case => {
    const name = o.entries.find(([k]) => k === 'name')?.[1];
    return { kind, payload: toJson(o), contentType: 'application/json', ...(typeof name === 'string' ? { name } : {}), ...extra };
  };
  const out: Case[] = [];

  // Wrong types (and odd values) for every field.
  const odd: Json[] = [42, -1, 1.5, true, false, null, new Obj([]), new Obj([['a', 1]]), [], [1, 2], [new Obj([])], [null], [[['deep']]], '', ' ', 'x', '\u0000', '\u202eevil', 'NaN', 'a'.repeat(1000), new Raw('-0'), new Raw('1e308')];
  for (const f of FIELDS) for (let i = 0; i < 8; i++) out.push(json('wrong type', body([[f, pick(odd)]])));

  // Huge strings, below and above the body limit.
  for (let i = 0; i < 24; i++) {
    const f = pick(['prompt', 'title', 'name', 'model', 'agent', 'tags', 'callback_url', 'concurrency_group', 'dedup_key']);
    const size = pick([10_000, 60_000, 70_000, 200_000, 2_000_000]);
    const s = f === 'callback_url' ? `http://x/${'a'.repeat(size)}` : f === 'name' ? `n${'a'.repeat(size)}` : 'é'.repeat(size / 2);
    out.push(json('huge string', body([[f, f === 'tags' ? [s] : s]])));
  }

  // Prototype keys at depths 0-3, in objects and in arrays.
  for (let i = 0; i < 48; i++) {
    const key = pick(['__proto__', 'constructor', 'prototype']);
    const value: Json = pick([new Obj([['polluted', true]]), new Obj([['prototype', new Obj([['polluted', true]])]]), 1, 'x', []]);
    let v: Json = new Obj([[key, value]]);
    for (let d = int(0, 3); d > 0; d--) v = rnd() < 0.5 ? [v] : new Obj([[word(), v]]);
    out.push(json('prototype key', v instanceof Obj && rnd() < 0.5 ? body(v.entries) : body([[pick(FIELDS), v]])));
  }

  // Deep nesting: around the limit and far beyond, at the top and in a field.
  for (const depth of [10, 63, 64, 65, 200, 5000, 30_000]) {
    for (const [open, close] of [
      ['[', ']'],
      ['{"a":', '}'],
    ] as const) {
      const deep = `${open.repeat(depth)}${open === '[' ? '' : '1'}${close.repeat(depth)}`;
      out.push({ kind: 'deep nesting', payload: deep, contentType: 'application/json' });
      out.push({ kind: 'deep nesting', payload: `{"prompt":"x","${pick(FIELDS)}":${deep}}`, contentType: 'application/json' });
    }
  }

  // Bytes that are not UTF-8 anywhere in an otherwise valid body.
  const invalid = [[0xff], [0xfe], [0xc0, 0xaf], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x80]];
  for (let i = 0; i < 32; i++) {
    const text = Buffer.from(toJson(body([['title', word()], ['tags', [word(), word()]]])));
    const at = int(0, text.length);
    out.push({ kind: 'invalid UTF-8', payload: Buffer.concat([text.subarray(0, at), Buffer.from(pick(invalid)), text.subarray(at)]), contentType: 'application/json' });
  }

  // Truncated JSON.
  for (let i = 0; i < 40; i++) {
    const text = toJson(body([['title', word()], ['priority', 'high'], ['tags', [word()]], ['retries', 1]]));
    out.push({ kind: 'truncated JSON', payload: text.slice(0, int(1, text.length - 1)), contentType: 'application/json' });
  }

  // Wrong or missing content types for a valid body.
  for (const ct of [null, '', 'text/plain', 'text/html', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/octet-stream', 'application/jsonx', 'json', 'application/json; charset=latin1', 'application/json; charset=utf-16']) {
    out.push({ kind: 'content type', payload: toJson(body([])), contentType: ct });
  }

  // Empty bodies, and JSON that is no object.
  for (const p of ['', ' ', '\n\t', '\ufeff', 'null', 'true', '0', '"prompt"', '[]', '[{"prompt":"x"}]', '{}', '{"prompt":null}']) {
    out.push({ kind: 'empty or no object', payload: p, contentType: 'application/json' });
  }

  // Odd numbers in every numeric field.
  const numbers = ['1e308', '-1e308', '1e309', '-1e309', '-0', '0', '0.1', '-1', '1e-320', '123456789012345678901234567890', '9007199254740993', '"NaN"', '"Infinity"', '"1e308"', '"-0"'];
  for (const f of ['timeout', 'retries', 'retry_backoff', 'max_cost_usd', 'max_turns', 'dedup_key']) {
    for (const n of numbers) out.push(json('odd number', body([[f, new Raw(n)]])));
  }

  // Odd names (a 300-character one too: see the test below).
  const names = ['a'.repeat(300), 'a'.repeat(101), 'a'.repeat(100), 'a/b', '/abs', '../x', '..', '.', 'a..b', 'a.', '', ' ', 'a b', 'ä', 'a\u0000b', 'a\\b', '-a', '_a', 'CON', 'a'.repeat(300).concat('/x'), '%2e%2e', 'a\nb'];
  for (const n of names) out.push(json('odd name', body([['name', n]])));

  // Valid bodies with random fields: these should be created.
  for (let i = 0; i < 30; i++) {
    const entries: Array<[string, Json]> = [['prompt', `do ${word()} ${'\u{1F600}'} ${word()}`]];
    if (rnd() < 0.5) entries.push(['name', `${word()}-${i}`]);
    if (rnd() < 0.5) entries.push(['priority', pick(['critical', 'high', 'default', 'low'])]);
    if (rnd() < 0.5) entries.push(['tags', [word(), word()]]);
    if (rnd() < 0.5) entries.push(['agent', 'command'], ['command', ['sh', '-c', 'true']]);
    if (rnd() < 0.3) entries.push(['timeout', pick(['90s', '5m', 30])]);
    out.push(json('valid', new Obj(entries)));
  }
  return out;
}

/** Rejects after `ms` without an answer. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('POST /v1/tasks fuzz', () => {
  it('every hostile body gets a 4xx with the error body and stores nothing, or a 201 whose task is stored as answered', async (t) => {
    const h = await harness({ configOverrides: { serve: { body_limit: BODY_LIMIT } } });
    const all = cases(0x14f022);
    assert.ok(all.length >= 400, `${all.length} bodies`);
    const byStatus = new Map<number, number>();
    const byKind = new Map<string, Map<number, number>>();
    for (const [i, c] of all.entries()) {
      const what = `#${i} ${c.kind} (${c.contentType ?? 'no content-type'}): ${(typeof c.payload === 'string' ? c.payload : c.payload.toString('latin1')).slice(0, 120)}`;
      const before = h.count();
      const r = await within(
        h.app.inject({ method: 'POST', url: '/v1/tasks', headers: c.contentType === null ? {} : { 'content-type': c.contentType }, payload: c.payload }),
        10_000,
        what,
      );
      byStatus.set(r.statusCode, (byStatus.get(r.statusCode) ?? 0) + 1);
      const kind = byKind.get(c.kind) ?? new Map<number, number>();
      kind.set(r.statusCode, (kind.get(r.statusCode) ?? 0) + 1);
      byKind.set(c.kind, kind);
      assert.ok([201, 400, 413, 415].includes(r.statusCode), `${what}: ${r.statusCode} ${r.body.slice(0, 300)}`);
      if (r.statusCode === 201) {
        const { task } = r.json() as { task: { id: number; name: string } };
        const row = h.store.db.prepare('SELECT name FROM tasks WHERE id = ?').get(task.id) as { name: string } | undefined;
        assert.equal(row?.name, task.name, `${what}: the answered task is stored`);
        assert.match(task.name, TASK_NAME, what);
        if (c.name !== undefined) assert.equal(task.name, c.name, `${what}: the name asked for`);
        assert.equal(h.count(), before + 1, what);
        continue;
      }
      const answer = r.json() as { error: { code: ErrorCode; message: string; field: string | null } };
      assert.deepEqual(Object.keys(answer), ['error'], what);
      assert.deepEqual(Object.keys(answer.error).sort(), ['code', 'field', 'message'], what);
      assert.equal(ERROR_STATUS[answer.error.code], r.statusCode, `${what}: code ${answer.error.code}`);
      assert.ok(typeof answer.error.message === 'string' && answer.error.message.length > 0, what);
      assert.ok(answer.error.field === null || typeof answer.error.field === 'string', what);
      assert.doesNotMatch(answer.error.message, /Maximum call stack|Forbidden|undefined|\[object Object\]/, what);
      assert.equal(h.count(), before, `${what}: nothing is stored`);
    }
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined, 'no prototype was changed');
    const show = (m: Map<number, number>) => [...m].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ');
    t.diagnostic(`${all.length} bodies; ${show(byStatus)}`);
    for (const [kind, m] of byKind) t.diagnostic(`  ${kind}: ${show(m)}`);
    for (const s of [201, 400, 413, 415]) assert.ok((byStatus.get(s) ?? 0) > 0, `some ${s}`);
  });

  it('a name of 300 characters is refused naming `name`', async () => {
    const h = await harness();
    const r = await post(h.app, '/v1/tasks', { prompt: 'x', name: 'a'.repeat(300) });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal(r.json().error.field, 'name');
    assert.match(r.json().error.message, /^name: /);
    assert.equal(h.count(), 0);
  });
});
