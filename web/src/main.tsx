/** Entry point of the agentq dashboard (built by Vite into web/dist/, served by `agentq serve` at /). */
import { render } from 'preact';
import { App } from './app.tsx';
import './styles.css';

render(<App />, document.getElementById('app')!);
