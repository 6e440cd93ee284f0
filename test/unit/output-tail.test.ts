/**
 * The output tail the store keeps of each attempt log: the last bytes cut where a code point
 * starts (never half a character), from a buffer and from a real file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { OUTPUT_TAIL_BYTES } from '../../src/core/types.ts';
import { formatBytes } from '../../src/ops/attempt-log.ts';
import { readOutputTail, tailIsCut, utf8Tail } from '../../src/results/logs.ts';

/** ASCII, 2-, 3- and 4-byte code points, mixed. */
const MIXED = 'a\u00e9b\u20acc\u{1F642}d\u00fc\u{10348}\u2713e';

describe('utf8Tail', () => {
  it('keeps the whole text when it fits, nothing for 0 bytes', () => {
    assert.equal(utf8Tail(Buffer.from('hello'), 5), 'hello');
    assert.equal(utf8Tail(Buffer.from('hello'), 64), 'hello');
    assert.equal(utf8Tail(Buffer.from('hello'), 0), '');
    assert.equal(utf8Tail(Buffer.alloc(0), 10), '');
  });

  it('never starts inside a code point: for every cut, a suffix of the text of at most the bytes asked, short of them by less than one code point', () => {
    const buf = Buffer.from(MIXED);
    for (let max = 0; max <= buf.length; max++) {
      const tail = utf8Tail(buf, max);
      assert.ok(!tail.includes('\uFFFD'), `cut at ${max}: no replacement character`);
      assert.ok(MIXED.endsWith(tail), `cut at ${max}: ${JSON.stringify(tail)} is a suffix`);
      const bytes = Buffer.byteLength(tail);
      assert.ok(bytes <= max && bytes > max - 4, `cut at ${max}: ${bytes} bytes`);
    }
  });

  it('drops the rest of a 2-, 3- and 4-byte code point cut in two', () => {
    assert.equal(utf8Tail(Buffer.from('\u00e9x'), 2), 'x'); // é is c3 a9: the cut leaves a9
    assert.equal(utf8Tail(Buffer.from('\u20acx'), 3), 'x');
    assert.equal(utf8Tail(Buffer.from('\u{1F642}x'), 4), 'x');
    assert.equal(utf8Tail(Buffer.from('\u{1F642}x'), 5), '\u{1F642}x');
  });

  it('reads bytes that are not UTF-8, and NUL, as U+FFFD', () => {
    assert.equal(utf8Tail(Buffer.from([0x61, 0xff, 0x00, 0x62]), 10), 'a\uFFFD\uFFFDb');
    // Stray continuation bytes past the three a code point may hold are not skipped for ever.
    assert.equal(utf8Tail(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x61]), 5), '\uFFFDa');
  });

  it('refuses a byte count that is negative or not whole', () => {
    assert.throws(() => utf8Tail(Buffer.from('x'), -1), /maxBytes: -1/);
    assert.throws(() => utf8Tail(Buffer.from('x'), 1.5), RangeError);
  });
});

describe('readOutputTail', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-tail-'));

  it("keeps the last 64 KiB of a longer log, cut at a code point, with the log's size", () => {
    const file = path.join(dir, 'long.log');
    // 120,001 bytes: "x" then 3-byte "€"s; the last 65,536 bytes start on the third byte of one.
    fs.writeFileSync(file, `x${'\u20ac'.repeat(40_000)}`);
    const tail = readOutputTail(file);
    assert.equal(tail.bytes, 120_001);
    assert.equal(tail.text, '\u20ac'.repeat(21_845), 'the 65,535 bytes of whole code points');
    assert.ok(Buffer.byteLength(tail.text) <= OUTPUT_TAIL_BYTES);
    assert.ok(tailIsCut(tail));
  });

  it('keeps a short log whole, and reads a missing one as empty', () => {
    const file = path.join(dir, 'short.log');
    fs.writeFileSync(file, 'done \u2713\n');
    assert.deepEqual(readOutputTail(file), { text: 'done \u2713\n', bytes: 9 });
    assert.ok(!tailIsCut(readOutputTail(file)));
    assert.deepEqual(readOutputTail(path.join(dir, 'absent.log')), { text: '', bytes: 0 });
  });

  it('cuts a log written in odd-sized pieces the same as the buffer function', () => {
    const file = path.join(dir, 'mixed.log');
    const text = MIXED.repeat(10_000);
    fs.writeFileSync(file, text);
    const tail = readOutputTail(file, 1001);
    assert.equal(tail.text, utf8Tail(Buffer.from(text), 1001));
    assert.ok(text.endsWith(tail.text));
    assert.equal(tail.bytes, Buffer.byteLength(text));
  });

  it('formats sizes for the header', () => {
    assert.deepEqual([formatBytes(512), formatBytes(64 * 1024), formatBytes(1_258_291), formatBytes(1536)], ['512 B', '64 KiB', '1.2 MiB', '1.5 KiB']);
  });
});
