/** The hash router: `#/` board, `#/tasks/ID`, `#/submit`, `#/agents`. */
import { useEffect, useState } from 'preact/hooks';

export type Route = { view: 'board' } | { view: 'task'; id: string } | { view: 'submit' } | { view: 'agents' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  const task = /^\/tasks\/([^/]+)$/.exec(path);
  if (task) return { view: 'task', id: decodeURIComponent(task[1]!) };
  if (path === '/submit') return { view: 'submit' };
  if (path === '/agents') return { view: 'agents' };
  return { view: 'board' };
}

/** Goes to a dashboard route (`/tasks/12`). */
export function navigate(path: string): void {
  location.hash = `#${path}`;
}

/** The current route, re-rendering on every hash change. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = (): void => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
