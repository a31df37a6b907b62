// client.mjs - an npm `ws` client driven by seatcast's integration tests.
//
//   node client.mjs URL [--protocol P]... [--header NAME:VALUE]...
//                       [--origin ORIGIN]
//
// Reads one JSON command per line on stdin and prints one JSON line per
// thing it observed on stdout (flushed as it happens), so that a test can
// drive it step by step and assert on what a real `ws` client saw.
//
// Commands:
//   {"op":"send","text":"...","fin":true}        text (fin:false fragments:
//                                                ws sends the first as text,
//                                                the rest as continuations)
//   {"op":"send","hex":"c3a9","fin":false}       raw bytes as text (to split
//                                                a UTF-8 sequence)
//   {"op":"send","hex":"0102","binary":true}     a binary message
//   {"op":"ping","text":"abc"}                   a ping with that payload
//   {"op":"close","code":1000,"reason":"bye"}    a close handshake
//   {"op":"terminate"}                           drop TCP without a close
//
// Events (field "ev"):
//   upgrade {status, headers}   the 101 response, headers lowercased
//   unexpected-response {status, headers}   a non-101 answer
//   open {protocol, extensions}
//   message {text | hex, binary}
//   ping {text} / pong {text}
//   close {code, reason}        the code and reason the server sent
//   error {message}
//   exit                        just before the process ends
//
// Commands read before the connection opens wait for it.
// The process exits after `close` (or an error before open), or when
// stdin ends (the connection is then terminated).
import WebSocket from 'ws';
import readline from 'node:readline';

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const args = process.argv.slice(2);
const url = args.shift();
const protocols = [];
const headers = {};
let origin;
while (args.length > 0) {
  const flag = args.shift();
  const val = args.shift();
  if (flag === '--protocol') {
    protocols.push(val);
  } else if (flag === '--header') {
    const i = val.indexOf(':');
    headers[val.slice(0, i)] = val.slice(i + 1).trim();
  } else if (flag === '--origin') {
    origin = val;
  } else {
    emit({ ev: 'error', message: `unknown flag ${flag}` });
    process.exit(2);
  }
}

// ws offers permessage-deflate by default, as browsers do: the server must
// decline it (SPEC 2: no extension is negotiated).
const opts = { headers, handshakeTimeout: 10000 };
if (origin !== undefined) opts.origin = origin;
const ws = new WebSocket(url, protocols, opts);
let finished = false;

function finish(code) {
  if (finished) return;
  finished = true;
  emit({ ev: 'exit' });
  // let stdout drain before leaving
  process.stdout.write('', () => process.exit(code));
}

ws.on('upgrade', (res) => {
  emit({ ev: 'upgrade', status: res.statusCode, headers: res.headers });
});
ws.on('unexpected-response', (req, res) => {
  emit({ ev: 'unexpected-response', status: res.statusCode,
         headers: res.headers });
  req.destroy();
  finish(0);
});
const pending = []; // commands read before the connection opened
ws.on('open', () => {
  emit({ ev: 'open', protocol: ws.protocol, extensions: ws.extensions });
  while (pending.length > 0) run(pending.shift());
});
ws.on('message', (data, isBinary) => {
  if (isBinary) {
    emit({ ev: 'message', binary: true, hex: Buffer.from(data).toString('hex') });
  } else {
    emit({ ev: 'message', binary: false, text: data.toString('utf8') });
  }
});
ws.on('ping', (data) => emit({ ev: 'ping', text: data.toString('utf8') }));
ws.on('pong', (data) => emit({ ev: 'pong', text: data.toString('utf8') }));
ws.on('error', (err) => emit({ ev: 'error', message: err.message,
                                code: err.code }));
ws.on('close', (code, reason) => {
  emit({ ev: 'close', code, reason: reason.toString('utf8') });
  finish(0);
});

function payload(cmd) {
  return cmd.hex !== undefined ? Buffer.from(cmd.hex, 'hex') : cmd.text;
}

function run(cmd) {
  const done = (err) => {
    if (err) emit({ ev: 'error', message: `${cmd.op}: ${err.message}` });
  };
  switch (cmd.op) {
    case 'send':
      ws.send(payload(cmd), { fin: cmd.fin !== false,
                              binary: cmd.binary === true,
                              compress: false }, done);
      break;
    case 'ping':
      ws.ping(payload(cmd), undefined, done);
      break;
    case 'close':
      ws.close(cmd.code, cmd.reason);
      break;
    case 'terminate':
      ws.terminate();
      break;
    default:
      emit({ ev: 'error', message: `unknown op ${cmd.op}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  try {
    const cmd = JSON.parse(line);
    if (ws.readyState === WebSocket.CONNECTING) pending.push(cmd);
    else run(cmd);
  } catch (err) {
    emit({ ev: 'error', message: `bad command: ${err.message}` });
  }
});
rl.on('close', () => {
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  setTimeout(() => finish(0), 2000).unref();
});
