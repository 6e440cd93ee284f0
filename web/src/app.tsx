/**
 * The dashboard shell: navigation, the hash router (`#/`, `#/tasks/ID`, `#/submit`,
 * `#/agents`), the live-connection badge and the one-time token dialog.
 */
import { useEffect, useState } from 'preact/hooks';
import { onTokenRequest, provideToken, type TokenRequest } from './api.ts';
import { useLive } from './live.ts';
import { useRoute, type Route } from './router.ts';
import { Board } from './views/board.tsx';
import { TaskDetailView } from './views/task-detail.tsx';
import { SubmitForm } from './views/submit-form.tsx';
import { AgentsView } from './views/agents.tsx';

function TokenDialog({ request }: { request: TokenRequest }) {
  const [value, setValue] = useState('');
  return (
    <div class="overlay" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form
        class="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) provideToken(value);
        }}
      >
        <h2 id="token-title">API token</h2>
        <p>
          {request.rejected ? 'The server refused that token. ' : 'This server needs a token. '}
          It is kept for this browser tab only (session storage).
        </p>
        <label>
          Token
          <input type="password" autoFocus autoComplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button type="submit" class="primary">
            Use token
          </button>
        </div>
      </form>
    </div>
  );
}

const NAV: Array<[Route['view'], string, string]> = [
  ['board', '#/', 'Board'],
  ['submit', '#/submit', 'Submit'],
  ['agents', '#/agents', 'Agents & spend'],
];

export function App() {
  const route = useRoute();
  const live = useLive();
  const [token, setToken] = useState<TokenRequest | null>(null);
  useEffect(() => onTokenRequest(setToken), []);
  const current = route.view === 'task' ? 'board' : route.view;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          agentq
        </a>
        <nav aria-label="Main">
          {NAV.map(([view, href, label]) => (
            <a href={href} aria-current={current === view ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class={`conn conn-${live.connection}`} role="status" title="Event stream (GET /v1/events)">
          {live.connection === 'live' ? 'live' : live.connection === 'connecting' ? 'connecting…' : 'reconnecting…'}
        </span>
      </header>
      <main>
        {route.view === 'board' && <Board />}
        {route.view === 'task' && <TaskDetailView key={route.id} id={route.id} />}
        {route.view === 'submit' && <SubmitForm />}
        {route.view === 'agents' && <AgentsView />}
      </main>
      {token && <TokenDialog request={token} />}
    </>
  );
}
