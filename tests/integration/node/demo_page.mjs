// demo_page.mjs - headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) looking at seatcast's demo page, for test_demo.py.
//
//   node demo_page.mjs USER_DATA_DIR
//
// Reads one JSON command per line on stdin and answers each with one JSON
// line on stdout: {"id": <the command's id>, "ok": true, ...} or
// {"id": ..., "ok": false, "error": "..."}.  Every answer also carries
// "console": the page's console messages and uncaught errors since the
// previous answer.  The first line printed is {"ready": true, "version"}.
//
// Commands:
//   {"op":"goto","url":"http://127.0.0.1:8080/#token=..."}
//   {"op":"wait","selector":"#event-1[data-available]","timeout":10000}
//                                   -> {"text": textContent of the match}
//   {"op":"text","selector":"#state"}           -> {"text"}
//   {"op":"attr","selector":"#event-1","name":"data-available"}
//                                   -> {"value"} (null when absent)
//   {"op":"screenshot","path":"/tmp/x.png"}     the whole page, PNG
//   {"op":"quit"}                               close Chromium and exit
//
// The browser is closed and the process exits when stdin ends, on quit,
// or after 120 s whatever happens, so that no Chromium outlives a test.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const userDataDir = process.argv[2];
if (!userDataDir) {
  process.stderr.write('usage: node demo_page.mjs USER_DATA_DIR\n');
  process.exit(2);
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let context = null;
let page = null;
let consoleLines = [];
let closing = false;

async function shutdown(code) {
  if (closing) return;
  closing = true;
  try {
    if (context) await context.close();
  } catch (e) {
    process.stderr.write('close: ' + e.message + '\n');
  }
  process.exit(code);
}

const hardStop = setTimeout(() => {
  process.stderr.write('demo_page.mjs: 120 s limit reached\n');
  shutdown(3);
}, 120000);
hardStop.unref();

context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
  viewport: { width: 960, height: 760 },
  timeout: 30000,
});
page = context.pages()[0] || await context.newPage();
page.on('console', m => consoleLines.push(m.type() + ': ' + m.text()));
page.on('pageerror', e => consoleLines.push('pageerror: ' + e.message));
emit({ ready: true, version: context.browser() ? context.browser().version() : null });

async function run(cmd) {
  switch (cmd.op) {
  case 'goto':
    await page.goto(cmd.url, { waitUntil: 'load', timeout: cmd.timeout || 15000 });
    return {};
  case 'wait': {
    const h = await page.waitForSelector(cmd.selector,
      { state: 'attached', timeout: cmd.timeout || 10000 });
    return { text: await h.textContent() };
  }
  case 'text': {
    const h = await page.$(cmd.selector);
    return { text: h ? await h.textContent() : null };
  }
  case 'attr': {
    const h = await page.$(cmd.selector);
    return { value: h ? await h.getAttribute(cmd.name) : null };
  }
  case 'screenshot':
    await page.screenshot({ path: cmd.path, fullPage: true });
    return {};
  case 'quit':
    return { quit: true };
  default:
    throw new Error('unknown op ' + cmd.op);
  }
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', line => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      emit({ ok: false, error: 'bad JSON: ' + e.message });
      return;
    }
    let reply;
    try {
      reply = Object.assign({ id: cmd.id, ok: true }, await run(cmd));
    } catch (e) {
      reply = { id: cmd.id, ok: false, error: e.message.split('\n')[0] };
    }
    reply.console = consoleLines;
    consoleLines = [];
    emit(reply);
    if (reply.quit) await shutdown(0);
  });
});
rl.on('close', () => { queue.then(() => shutdown(0)); });
