/**
 * One-time answer links of blocked tasks: `BASE/v1/tasks/ID/answer?token=TOKEN`. The token
 * (32 random bytes) is made when a notification is sent and stored only as its sha256, bound
 * to the task and its question; `agentq serve` takes it instead of its main token on that
 * one route, once, until it expires (`serve.answer_link_ttl`, default 24 h).
 */
import crypto from 'node:crypto';
import type { Config } from '../config/config.ts';

/** The prefix of answer tokens (recognisable in logs and leaks). */
export const ANSWER_TOKEN_PREFIX = 'aqa_';

/** A new answer token: `aqa_` + 32 random bytes, base64url. */
export function newAnswerToken(): string {
  return `${ANSWER_TOKEN_PREFIX}${crypto.randomBytes(32).toString('base64url')}`;
}

/** The sha256 (hex) a token is stored and looked up by. */
export function answerTokenSha256(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Where people reach `agentq serve`: config `serve.public_url` (the A2A card's base too; config
 * drops a trailing slash), else `http://HOST:PORT` from `serve.host` and `serve.port` (a
 * wildcard host as loopback).
 */
export function publicBaseUrl(config: Pick<Config, 'serve'>): string {
  if (config.serve.public_url) return config.serve.public_url;
  let host = config.serve.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::' || host === '[::]') host = '::1';
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return `http://${host}:${config.serve.port}`;
}

/** The answer link of a task with a token. */
export function answerUrl(base: string, taskId: number, token: string): string {
  return `${base}/v1/tasks/${taskId}/answer?token=${encodeURIComponent(token)}`;
}
