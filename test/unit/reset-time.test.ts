/**
 * parseResetTime: the reset moments in Claude Code's usage-limit texts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isValidTimeZone, parseResetTime, zonedTimeToEpoch } from '../../src/agents/claude/reset-time.ts';

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

describe('parseResetTime', () => {
  it('reads epoch seconds after the bar (Claude AI usage limit reached|<epoch>)', () => {
    const now = Date.parse('2025-10-01T12:00:00Z');
    assert.equal(parseResetTime('Claude AI usage limit reached|1759327200', now), 1759327200_000);
  });

  it('reads a 13-digit epoch after the bar as ms', () => {
    assert.equal(parseResetTime('Claude AI usage limit reached|1759327200000', 0), 1759327200_000);
  });

  it('"resets 5:50pm (Europe/Berlin)" later today (summer time, UTC+2)', () => {
    const now = Date.parse('2026-07-10T10:00:00Z'); // 12:00 in Berlin
    const text = "You've hit your limit · resets 5:50pm (Europe/Berlin)";
    assert.equal(iso(parseResetTime(text, now)), '2026-07-10T15:50:00.000Z');
  });

  it('"resets 5:50pm (Europe/Berlin)" seen after 5:50pm Berlin means tomorrow (winter, UTC+1)', () => {
    const now = Date.parse('2026-01-15T17:00:00Z'); // 18:00 in Berlin
    const text = "You've hit your limit · resets 5:50pm (Europe/Berlin)";
    assert.equal(iso(parseResetTime(text, now)), '2026-01-16T16:50:00.000Z');
  });

  it('"resets 2pm (Asia/Shanghai)" crosses the UTC date line correctly', () => {
    // 23:30 UTC on the 9th is 07:30 on the 10th in Shanghai: next 2pm is the 10th 06:00 UTC.
    const now = Date.parse('2026-03-09T23:30:00Z');
    const text = "You've hit your limit · resets 2pm (Asia/Shanghai)";
    assert.equal(iso(parseResetTime(text, now)), '2026-03-10T06:00:00.000Z');
  });

  it('exactly the reset time counts as passed: the next day', () => {
    const now = Date.parse('2026-03-10T06:00:00Z');
    assert.equal(iso(parseResetTime('resets 2pm (Asia/Shanghai)', now)), '2026-03-11T06:00:00.000Z');
  });

  it('12am is midnight and 12pm is noon', () => {
    const now = Date.parse('2026-05-01T01:00:00Z');
    assert.equal(iso(parseResetTime('resets 12am (UTC)', now)), '2026-05-02T00:00:00.000Z');
    assert.equal(iso(parseResetTime('resets 12pm (UTC)', now)), '2026-05-01T12:00:00.000Z');
  });

  it('accepts ICU spacing and capitals before AM/PM ("5:50\\u202fPM")', () => {
    const now = Date.parse('2026-07-10T10:00:00Z');
    assert.equal(iso(parseResetTime('resets 5:50\u202fPM (Europe/Berlin)', now)), '2026-07-10T15:50:00.000Z');
    assert.equal(iso(parseResetTime('resets 5:50 p.m. (Europe/Berlin)', now)), '2026-07-10T15:50:00.000Z');
  });

  it('accepts a 24-hour clock time', () => {
    const now = Date.parse('2026-07-10T10:00:00Z');
    assert.equal(iso(parseResetTime('resets 17:50 (Europe/Berlin)', now)), '2026-07-10T15:50:00.000Z');
  });

  it('reads a date for resets more than a day away ("Oct 9, 2pm")', () => {
    const now = Date.parse('2026-10-05T12:00:00Z');
    const text = "You've hit your weekly limit · resets Oct 9, 2pm (Europe/Berlin)";
    assert.equal(iso(parseResetTime(text, now)), '2026-10-09T12:00:00.000Z');
  });

  it('a date early next year without a year rolls over', () => {
    const now = Date.parse('2026-12-30T12:00:00Z');
    assert.equal(iso(parseResetTime('resets Jan 2, 10:30am (UTC)', now)), '2027-01-02T10:30:00.000Z');
  });

  it('reads an explicit year ("Jan 2, 2027, 10:30am")', () => {
    const now = Date.parse('2026-12-30T12:00:00Z');
    assert.equal(iso(parseResetTime('resets Jan 2, 2027, 10:30am (UTC)', now)), '2027-01-02T10:30:00.000Z');
  });

  it('without a zone uses defaultTimeZone', () => {
    const now = Date.parse('2026-07-10T10:00:00Z');
    const at = parseResetTime("You've hit your limit · resets 5pm", now, { defaultTimeZone: 'America/New_York' });
    assert.equal(iso(at), '2026-07-10T21:00:00.000Z');
  });

  it('returns null for unknown zones, texts without a time, and nonsense times', () => {
    const now = Date.now();
    assert.equal(parseResetTime('resets 5pm (Mars/Olympus_Mons)', now), null);
    assert.equal(parseResetTime('API Error: Rate limit reached', now), null);
    assert.equal(parseResetTime("You've hit your limit", now), null);
    assert.equal(parseResetTime('resets 13pm (UTC)', now), null);
    assert.equal(parseResetTime('resets 5:75pm (UTC)', now), null);
    assert.equal(parseResetTime('resets 5 (UTC)', now), null);
  });
});

describe('zonedTimeToEpoch', () => {
  it('handles both sides of a DST change', () => {
    // Berlin switches to summer time on 2026-03-29 at 02:00 → 03:00.
    assert.equal(iso(zonedTimeToEpoch(2026, 2, 29, 1, 30, 'Europe/Berlin')), '2026-03-29T00:30:00.000Z');
    assert.equal(iso(zonedTimeToEpoch(2026, 2, 29, 3, 30, 'Europe/Berlin')), '2026-03-29T01:30:00.000Z');
    // 02:30 does not exist that night; it resolves to the instant after the gap.
    assert.equal(iso(zonedTimeToEpoch(2026, 2, 29, 2, 30, 'Europe/Berlin')), '2026-03-29T01:30:00.000Z');
  });

  it('knows valid and invalid zones', () => {
    assert.equal(isValidTimeZone('Europe/Berlin'), true);
    assert.equal(isValidTimeZone('Nowhere/Special'), false);
  });
});
