// browser.mjs - a real browser (Debian's headless Chromium, driven by npm
// playwright-core) connects to seatcast the way browser clients do:
// new WebSocket(url, ["seatcast.v1", "bearer." + jwt]).
//
//   node browser.mjs '{"url": "ws://127.0.0.1:PORT/ws", "token": JWT,
//                      "eventId": 1, "screenshot": PATH,
//                      "userDataDir": DIR, "timeoutMs": 20000}'
//
// Protocol with the test, one JSON object per stdout line:
//   {"step":"subscribed","protocol":"seatcast.v1","messages":[...]}
//       the page is connected and has the event's first seat_update;
//       the test now books a seat;
//   {"step":"done","messages":[...],"screenshot":PATH}
//       a booking_created and a later seat_update arrived; the page is
//       saved as a PNG and the browser is closed.
// Anything going wrong: {"step":"error","error":"..."} and exit 1.
//
// The page is served by this script over http://127.0.0.1 (a site on the
// same machine, as in development): Chromium's Local Network Access checks
// refuse a ws://127.0.0.1 connection from a data: or about:blank page.
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const opts = JSON.parse(process.argv[2]);
const timeout = opts.timeoutMs || 20000;

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>seatcast live seats</title>
<style>
 body { font: 16px sans-serif; margin: 24px; }
 #seats { font-size: 48px; font-weight: bold; }
 li { font-family: monospace; font-size: 12px; }
</style></head>
<body>
 <h1>seatcast - event <span id="event"></span></h1>
 <p>protocol: <b id="proto">connecting</b></p>
 <p>available seats: <span id="seats">?</span></p>
 <ol id="log"></ol>
</body></html>`;

function servePage() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(PAGE);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function main() {
  const site = await servePage();
  const context = await chromium.launchPersistentContext(opts.userDataDir, {
    executablePath: opts.executablePath || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 900, height: 600 },
    timeout,
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(timeout);
    page.on("console", (m) => process.stderr.write("console: " + m.text() + "\n"));
    await page.goto("http://127.0.0.1:" + site.address().port + "/");
    // connect, wait for the greeting, subscribe
    const protocol = await page.evaluate(
      ({ url, token, eventId }) =>
        new Promise((resolve, reject) => {
          window.msgs = [];
          document.getElementById("event").textContent = String(eventId);
          const ws = new WebSocket(url, ["seatcast.v1", "bearer." + token]);
          window.ws = ws;
          ws.onerror = () => reject(new Error("WebSocket error"));
          ws.onclose = (e) => {
            window.closed = { code: e.code, reason: e.reason };
            reject(new Error("closed " + e.code + " " + e.reason));
          };
          ws.onmessage = (e) => {
            const m = JSON.parse(e.data);
            window.msgs.push(m);
            const li = document.createElement("li");
            li.textContent = e.data;
            document.getElementById("log").appendChild(li);
            if (m.type === "seat_update") {
              document.getElementById("seats").textContent =
                m.availableSeats + " / " + m.seatCapacity;
            }
            if (m.type === "connection_established") {
              document.getElementById("proto").textContent = ws.protocol;
              ws.send(JSON.stringify({ type: "subscribe_event", eventId }));
              resolve(ws.protocol);
            }
          };
        }),
      { url: opts.url, token: opts.token, eventId: opts.eventId },
    );
    await page.waitForFunction(
      (id) => window.msgs.some((m) => m.type === "seat_update" && m.eventId === id),
      opts.eventId,
    );
    say({
      step: "subscribed",
      protocol,
      messages: await page.evaluate(() => window.msgs),
    });
    // the test books now: wait for booking_created, then a seat_update
    await page.waitForFunction(() => {
      const i = window.msgs.findIndex((m) => m.type === "booking_created");
      return i >= 0 && window.msgs.slice(i + 1).some((m) => m.type === "seat_update");
    });
    const messages = await page.evaluate(() => window.msgs);
    const state = await page.evaluate(() => ({
      readyState: window.ws.readyState,
      protocol: window.ws.protocol,
      url: window.ws.url,
    }));
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    await page.evaluate(() => {
      window.ws.onclose = null;
      window.ws.close(1000, "done");
    });
    say({ step: "done", messages, state, screenshot: opts.screenshot });
  } finally {
    await context.close();
    site.close();
  }
}

main().catch((e) => {
  say({ step: "error", error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
