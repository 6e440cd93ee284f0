/**
 * Reset times of an OpenAI-compatible 429 from its headers (src/agents/openai/reset-headers.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResetDuration, parseRetryAfter, resetAtFromHeaders } from '../../src/agents/openai/reset-headers.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('parseResetDuration (x-ratelimit-reset-*)', () => {
  it('reads Go-style durations as ms', () => {
    assert.equal(parseResetDuration('1s'), 1000);
    assert.equal(parseResetDuration('6m0s'), 360_000);
    assert.equal(parseResetDuration('2m59.56s'), 179_560);
    assert.equal(parseResetDuration('1h0m0s'), 3_600_000);
    assert.equal(parseResetDuration('20ms'), 20);
    assert.equal(parseResetDuration('0.5s'), 500);
    assert.equal(parseResetDuration('1d'), 86_400_000);
    assert.equal(parseResetDuration(' 7.66s '), 7660);
    assert.equal(parseResetDuration('3'), 3000, 'a bare number is seconds');
  });

  it('refuses what it cannot read', () => {
    for (const bad of [null, undefined, '', 'soon', '5x', '1s later', 's', '-1s', '1m-2s', '400d']) {
      assert.equal(parseResetDuration(bad), null, String(bad));
    }
  });
});

describe('parseRetryAfter', () => {
  it('delay-seconds, also fractional', () => {
    assert.equal(parseRetryAfter('7', NOW), NOW + 7000);
    assert.equal(parseRetryAfter('0', NOW), NOW);
    assert.equal(parseRetryAfter('1.5', NOW), NOW + 1500);
  });

  it('HTTP-dates (IMF-fixdate, RFC 850, asctime); the past gives now', () => {
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 12:05:00 GMT', NOW), NOW + 300_000);
    assert.equal(parseRetryAfter('Sunday, 01-Mar-26 12:05:00 GMT', NOW), NOW + 300_000);
    assert.equal(parseRetryAfter('Sun Mar  1 12:05:00 2026', NOW) !== null, true);
    assert.equal(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', NOW), NOW);
  });

  it('null for garbage, negatives and absurd delays', () => {
    for (const bad of [null, '', 'later', '-5', '1e9', '12:00', 'Sun, 01 Mar 2099 12:00:00 GMT']) {
      assert.equal(parseRetryAfter(bad, NOW), null, String(bad));
    }
  });
});

describe('resetAtFromHeaders', () => {
  const h = (o: Record<string, string>) => new Headers(o);

  it('retry-after-ms, then Retry-After, then x-ratelimit-reset-*', () => {
    assert.equal(resetAtFromHeaders(h({ 'retry-after-ms': '2500', 'retry-after': '7' }), NOW), NOW + 2500);
    assert.equal(resetAtFromHeaders(h({ 'retry-after': '7', 'x-ratelimit-reset-requests': '1m0s' }), NOW), NOW + 7000);
    assert.equal(resetAtFromHeaders(h({ 'Retry-After': 'Sun, 01 Mar 2026 12:00:30 GMT' }), NOW), NOW + 30_000);
    assert.equal(resetAtFromHeaders(h({ 'retry-after': 'soon', 'x-ratelimit-reset-tokens': '6m0s' }), NOW), NOW + 360_000, 'an unreadable Retry-After falls through');
  });

  it('the empty bucket decides; else the later of the two', () => {
    const both = { 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '6m0s' };
    assert.equal(resetAtFromHeaders(h(both), NOW), NOW + 360_000);
    assert.equal(resetAtFromHeaders(h({ ...both, 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-remaining-tokens': '9000' }), NOW), NOW + 1000);
    assert.equal(resetAtFromHeaders(h({ ...both, 'x-ratelimit-remaining-requests': '4', 'x-ratelimit-remaining-tokens': '0' }), NOW), NOW + 360_000);
    assert.equal(resetAtFromHeaders(h({ 'x-ratelimit-reset-requests': '20ms' }), NOW), NOW + 20);
  });

  it('null without any of them', () => {
    assert.equal(resetAtFromHeaders(h({}), NOW), null);
    assert.equal(resetAtFromHeaders(h({ 'x-ratelimit-remaining-requests': '0' }), NOW), null);
    assert.equal(resetAtFromHeaders(null, NOW), null);
  });
});
