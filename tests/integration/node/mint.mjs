// mint.mjs - signs and verifies JWTs with npm jsonwebtoken, for seatcast's
// integration tests (tokens made by a library nobody here wrote).
//
//   echo '[{"alg":"HS256","key":"secret","payload":{"sub":"1"}}, ...]' |
//       node mint.mjs
//
// Reads one JSON array of jobs on stdin and prints one JSON array of
// results (same order) on stdout.  A job is either
//   {"alg": "HS256|RS256|ES256|none|...", "key": "text" | "keyFile": PATH,
//    "payload": {...}, "header": {...}}          -> the token (a string)
// (no "iat" is added unless the payload has one), or
//   {"verify": TOKEN, "key": ... | "keyFile": PATH, "algorithms": [...]}
//                                                -> the decoded claims
// Any error exits 1 with the message on stderr.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const jwt = require("jsonwebtoken");

function keyOf(job) {
  if (job.keyFile !== undefined) {
    return readFileSync(job.keyFile);
  }
  return job.key;
}

function run(job) {
  if (job.verify !== undefined) {
    return jwt.verify(job.verify, keyOf(job), {
      algorithms: job.algorithms || ["HS256"],
      clockTolerance: 5,
    });
  }
  const opts = { algorithm: job.alg, noTimestamp: true };
  if (job.header) {
    opts.header = job.header;
  }
  if (job.alg === "none") {
    return jwt.sign(job.payload, null, opts);
  }
  return jwt.sign(job.payload, keyOf(job), opts);
}

const input = readFileSync(0, "utf8");
try {
  const jobs = JSON.parse(input);
  process.stdout.write(JSON.stringify(jobs.map(run)) + "\n");
} catch (e) {
  process.stderr.write("mint.mjs: " + (e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
}
