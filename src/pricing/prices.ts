/**
 * Model prices and the cost of a run from its token counts: for agents that report tokens
 * only (Codex, Gemini, OpenAI-compatible servers), and for watching a task's budget while
 * Claude Code streams (it reports its own cost only in the final `result` line).
 */
import { globRegExp } from '../core/glob.ts';

/** USD per million tokens. */
export interface ModelPrice {
  /** Uncached input (prompt) tokens. */
  input: number;
  /** Output tokens (reasoning/thinking tokens included). */
  output: number;
  /** Input tokens read from the provider's prompt cache; default: `input`. */
  cachedInput?: number;
  /** Input tokens written to the prompt cache (Anthropic); default: `input`. */
  cacheWrite?: number;
}

/** Token counts of one model response or of a whole run. Unknown counts are 0. */
export interface TokenUsage {
  /** Uncached input tokens. */
  inputTokens: number;
  outputTokens: number;
  /** Input tokens served from the prompt cache (not part of `inputTokens`). */
  cachedInputTokens?: number;
  /** Input tokens written to the prompt cache (not part of `inputTokens`). */
  cacheWriteTokens?: number;
}

/** A price table: model-id patterns (`*` matches anything) → price. */
export type PriceTable = Record<string, ModelPrice>;

/**
 * Default prices, USD per million tokens, as the providers published them on the date in
 * {@link DEFAULT_PRICES_AS_OF}; sources: https://www.anthropic.com/pricing (Claude API),
 * https://openai.com/api/pricing, https://ai.google.dev/gemini-api/docs/pricing (standard
 * tier, prompts up to 200k tokens). Prices change: override or extend them with `prices:`
 * in config. A family pattern (`claude-sonnet-*`) covers models released after that date
 * at the family's latest price.
 */
export const DEFAULT_PRICES: PriceTable = {
  // Anthropic: cache reads 0.1×, 5-minute cache writes 1.25× the input price.
  'claude-opus-4-0*': { input: 15, output: 75, cachedInput: 1.5, cacheWrite: 18.75 },
  'claude-opus-4-1*': { input: 15, output: 75, cachedInput: 1.5, cacheWrite: 18.75 },
  'claude-opus-4-2025*': { input: 15, output: 75, cachedInput: 1.5, cacheWrite: 18.75 },
  'claude-3-opus*': { input: 15, output: 75, cachedInput: 1.5, cacheWrite: 18.75 },
  'claude-opus-*': { input: 5, output: 25, cachedInput: 0.5, cacheWrite: 6.25 },
  'claude-sonnet-*': { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 },
  'claude-3-5-sonnet*': { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 },
  'claude-3-7-sonnet*': { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 },
  'claude-haiku-*': { input: 1, output: 5, cachedInput: 0.1, cacheWrite: 1.25 },
  'claude-3-5-haiku*': { input: 0.8, output: 4, cachedInput: 0.08, cacheWrite: 1 },
  // OpenAI: cached input as listed.
  'gpt-5*': { input: 1.25, output: 10, cachedInput: 0.125 },
  'gpt-5-mini*': { input: 0.25, output: 2, cachedInput: 0.025 },
  'gpt-5-nano*': { input: 0.05, output: 0.4, cachedInput: 0.005 },
  'gpt-4.1*': { input: 2, output: 8, cachedInput: 0.5 },
  'gpt-4.1-mini*': { input: 0.4, output: 1.6, cachedInput: 0.1 },
  'gpt-4o*': { input: 2.5, output: 10, cachedInput: 1.25 },
  'gpt-4o-mini*': { input: 0.15, output: 0.6, cachedInput: 0.075 },
  'o3*': { input: 2, output: 8, cachedInput: 0.5 },
  'o4-mini*': { input: 1.1, output: 4.4, cachedInput: 0.275 },
  // Google: standard tier, prompts ≤ 200k tokens.
  'gemini-2.5-pro*': { input: 1.25, output: 10, cachedInput: 0.125 },
  'gemini-2.5-flash*': { input: 0.3, output: 2.5, cachedInput: 0.03 },
  'gemini-2.5-flash-lite*': { input: 0.1, output: 0.4, cachedInput: 0.01 },
  'gemini-3-pro*': { input: 2, output: 12, cachedInput: 0.2 },
  // Families: newer models at the latest listed price of their line.
  'gpt-*': { input: 1.25, output: 10, cachedInput: 0.125 },
  'gemini-*pro*': { input: 2, output: 12, cachedInput: 0.2 },
  'gemini-*flash*': { input: 0.3, output: 2.5, cachedInput: 0.03 },
  'gemini-*flash-lite*': { input: 0.1, output: 0.4, cachedInput: 0.01 },
};

/** The day {@link DEFAULT_PRICES} were taken from the providers' price pages. */
export const DEFAULT_PRICES_AS_OF = '2025-11-24';

/** `claude-opus-4-8[1m]` → `claude-opus-4-8`; provider prefixes (`openai/gpt-5`) dropped. */
function normalizeModel(model: string): string {
  return model
    .trim()
    .toLowerCase()
    .replace(/\[[^\]]*\]$/, '')
    .replace(/^.*\//, '');
}

/**
 * The price of `model` in `table` (default {@link DEFAULT_PRICES}): an exact key wins, then
 * the matching pattern with the most literal characters (`gpt-5-mini*` beats `gpt-5*`).
 * Null when nothing matches or `model` is null.
 */
export function priceOf(model: string | null, table: PriceTable = DEFAULT_PRICES): ModelPrice | null {
  if (!model) return null;
  const id = normalizeModel(model);
  let best: { price: ModelPrice; specificity: number } | null = null;
  for (const [pattern, price] of Object.entries(table)) {
    if (pattern.toLowerCase() === id) return price;
    if (!pattern.includes('*') || !globRegExp(pattern.toLowerCase()).test(id)) continue;
    const specificity = pattern.replaceAll('*', '').length;
    if (!best || specificity > best.specificity) best = { price, specificity };
  }
  return best?.price ?? null;
}

/**
 * USD cost of `usage` on `model` at `table`'s prices; null when the model has no price.
 * Example: 1,000,000 input + 100,000 output tokens of `claude-sonnet-4-5` = 3 + 1.5 = 4.5.
 */
export function costOf(model: string | null, usage: TokenUsage, table: PriceTable = DEFAULT_PRICES): number | null {
  const price = priceOf(model, table);
  if (!price) return null;
  const usd =
    usage.inputTokens * price.input +
    usage.outputTokens * price.output +
    (usage.cachedInputTokens ?? 0) * (price.cachedInput ?? price.input) +
    (usage.cacheWriteTokens ?? 0) * (price.cacheWrite ?? price.input);
  return usd / 1_000_000;
}

/**
 * Adds up the cost of an attempt's model responses as they stream in (`turn` events), for
 * `max_cost_usd`. Responses of a model without a price count 0 and are remembered in
 * `unpriced`.
 */
export class CostMeter {
  private total = 0;
  /** Models seen without a price. */
  readonly unpriced = new Set<string>();
  /** Whether any response was priced. */
  priced = false;

  constructor(private readonly table: PriceTable = DEFAULT_PRICES) {}

  /** Adds one response; returns the running total in USD. */
  add(model: string | null, usage: TokenUsage): number {
    const usd = costOf(model, usage, this.table);
    if (usd === null) this.unpriced.add(model ?? '(unknown model)');
    else {
      this.total += usd;
      this.priced = true;
    }
    return this.total;
  }

  /** USD so far. */
  get usd(): number {
    return this.total;
  }
}
