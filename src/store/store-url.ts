/**
 * Store URLs as they may be shown: in errors, logs and `status`. Imports nothing heavy, so
 * the CLI can use it without loading a database client.
 */

/**
 * The URL with its credentials hidden: the password of `scheme://user:pass@host/…` becomes
 * `***` (`postgres://agentq:***@db/agentq`), as does a `password=` query value. Anything
 * else (sqlite:PATH, a URL without a password) is returned unchanged.
 */
export function redactStoreUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i, (_all, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return `${scheme}${colon === -1 ? userinfo : `${userinfo.slice(0, colon)}:***`}@`;
    })
    .replace(/([?&]password=)[^&#]*/gi, '$1***');
}
