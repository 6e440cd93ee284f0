/**
 * The one wildcard rule of agentq's patterns (price-table model ids, `agent_env` names).
 */

/**
 * A RegExp matching all of a string against `pattern`, where `*` matches any run of
 * characters (none included) and every other character stands for itself.
 * @param pattern e.g. `claude-sonnet-*`, `AWS_*`, `*_TOKEN`
 * @param flags RegExp flags, e.g. `i` to ignore case. Default none (case matters).
 */
export function globRegExp(pattern: string, flags = ''): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, flags);
}
