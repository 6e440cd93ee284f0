/**
 * The fake Gemini API fixture itself (test/fixtures/fake-gemini.ts), with plain HTTP requests
 * shaped like Gemini CLI 0.61's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { promptOf, startFakeGemini, type FakeGemini } from '../fixtures/fake-gemini.ts';

describe('fake-gemini', () => {
  let api: FakeGemini;
  before(async () => {
    api = await startFakeGemini({
      rules: [
        { match: 'fixture-a', turns: [{ shell: 'ls', text: 'Looking.' }, { text: 'A done on {{model}}' }] },
        { match: /fixture-err/, turns: [{ error: { status: 429, headers: { 'retry-after': '7' } }, times: 2 }, { text: 'after errors', delayMs: 200 }] },
      ],
    });
  });
  after(() => api.close());

  const body = (prompt: string, modelTurns = 0, tools = true) => {
    const contents: unknown[] = [{ role: 'user', parts: [{ text: '<session_context>\nctx\n</session_context>' }, { text: prompt }] }];
    for (let i = 0; i < modelTurns; i++) {
      contents.push({ role: 'model', parts: [{ functionCall: { name: 'run_shell_command', args: {} } }] });
      contents.push({ role: 'user', parts: [{ functionResponse: { name: 'run_shell_command', response: { output: 'x' } } }] });
    }
    return JSON.stringify({ contents, tools: tools ? [{ functionDeclarations: [{ name: 'run_shell_command' }] }] : undefined });
  };
  const post = (payload: string, action = 'streamGenerateContent?alt=sse', model = 'gemini-2.5-flash') =>
    fetch(`${api.url}/v1beta/models/${model}:${action}`, { method: 'POST', headers: { 'x-goog-api-key': 'k' }, body: payload });
  const sse = async (res: Response) =>
    (await res.text())
      .split(/\r?\n\r?\n/)
      .filter(Boolean)
      .map((c) => JSON.parse(c.replace(/^data: /, '')) as { candidates: { content: { parts: Record<string, any>[] } }[]; usageMetadata?: Record<string, number> });

  it('promptOf drops the <session_context> part', () => {
    assert.equal(promptOf([{ role: 'user', parts: [{ text: '<session_context>x</session_context>' }, { text: 'p' }] }]), 'p');
    assert.equal(promptOf([]), null);
  });

  it('turn index = model contents: shell call, then text with {{model}}, then "done"', async () => {
    const first = await sse(await post(body('fixture-a')));
    const parts = first.flatMap((c) => c.candidates[0]!.content.parts);
    assert.equal(parts[0]?.text, 'Looking.');
    assert.equal(parts[1]?.functionCall?.name, 'run_shell_command');
    assert.equal(parts[1]?.functionCall?.args?.command, 'ls');
    const second = await sse(await post(body('fixture-a', 1)));
    assert.equal(second.map((c) => c.candidates[0]!.content.parts[0]!.text).join(''), 'A done on gemini-2.5-flash');
    assert.deepEqual(second.at(-1)?.usageMetadata, { promptTokenCount: 100, candidatesTokenCount: 10, totalTokenCount: 110 });
    const third = await sse(await post(body('fixture-a', 2)));
    assert.equal(third[0]?.candidates[0]?.content.parts[0]?.text, 'done');
    assert.deepEqual(api.turnRequests('fixture-a').map((r) => [r.modelTurns, r.answer, r.model, r.headers['x-goog-api-key']]), [
      [0, 'tool_call', 'gemini-2.5-flash', 'k'],
      [1, 'text', 'gemini-2.5-flash', 'k'],
      [2, 'text', 'gemini-2.5-flash', 'k'],
    ]);
  });

  it('error turns `times` per prompt with status, Google error body and headers; delayMs', async () => {
    const a = await post(body('fixture-err'));
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '7');
    assert.deepEqual(((await a.json()) as { error: { code: number; status: string } }).error.status, 'RESOURCE_EXHAUSTED');
    assert.equal((await post(body('fixture-err'))).status, 429);
    const start = Date.now();
    const c = await post(body('fixture-err'));
    assert.equal(c.status, 200);
    assert.ok(Date.now() - start >= 190);
    assert.equal((await sse(c))[0]?.candidates[0]?.content.parts[0]?.text, 'after errors');
  });

  it('side calls without tools answer JSON (non-stream) and consume no turn; unknown routes 404', async () => {
    const side = (await (await post(body('fixture-a', 0, false), 'generateContent')).json()) as { candidates: { content: { parts: { text: string }[] } }[] };
    assert.equal(JSON.parse(side.candidates[0]!.content.parts[0]!.text).model_choice, 'flash');
    assert.equal((await fetch(`${api.url}/v1beta/nothing`)).status, 404);
    const count = (await (await post(body('x'), 'countTokens')).json()) as { totalTokens: number };
    assert.ok(count.totalTokens > 0);
  });
});
