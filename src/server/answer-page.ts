/**
 * The page an answer link opens in a browser (GET /v1/tasks/:id/answer?token=…): a text box
 * whose answer is POSTed as JSON to the same URL (the link's own token). It holds no task
 * data and no secret (the token stays in the address bar); the question is in the
 * notification. Kept from caches, referrers and other origins by its headers.
 */

/** Headers of the answer page: no caching, no referrer (the URL holds the token), nothing loaded from elsewhere. */
export const ANSWER_PAGE_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
};

/** `&`, `<`, `>`, `"` and `'` as HTML entities. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The answer page of task `taskRef` (as written in the path). */
export function answerPage(taskRef: string): string {
  const task = escapeHtml(taskRef);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Answer task #${task} · agentq</title>
<style>
body { font: 16px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 36rem; padding: 1rem; }
textarea { box-sizing: border-box; width: 100%; min-height: 8rem; font: inherit; padding: .5rem; }
button { font: inherit; padding: .5rem 1.25rem; margin-top: .5rem; }
#status { margin-top: 1rem; }
</style>
</head>
<body>
<h1>Answer task #${task}</h1>
<p>The agent's question is in the notification. The answer resumes the task; this link works once.</p>
<form id="f">
<label for="answer">Answer</label>
<textarea id="answer" required></textarea>
<button type="submit">Send answer</button>
</form>
<p id="status" role="status"></p>
<script>
document.getElementById('f').addEventListener('submit', async (event) => {
  event.preventDefault();
  const status = document.getElementById('status');
  const answer = document.getElementById('answer').value;
  status.textContent = 'Sending…';
  try {
    const res = await fetch(location.href, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ answer }) });
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      status.textContent = 'Answered: task #' + body.task.id + ' is queued again.';
      document.getElementById('f').hidden = true;
    } else {
      status.textContent = 'Not answered: ' + ((body.error && body.error.message) || ('HTTP ' + res.status));
    }
  } catch (err) {
    status.textContent = 'Not answered: ' + err;
  }
});
</script>
</body>
</html>
`;
}
