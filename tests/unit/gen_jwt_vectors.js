/*
 * gen_jwt_vectors.js - the jsonwebtoken half of gen_jwt_vectors.sh
 *
 * Usage: node gen_jwt_vectors.js KEYDIR
 * KEYDIR holds secret.txt, rsa.pem, ec256.pem and ec384.pem (private keys
 * made by openssl genpkey).  Prints one "name token" line per vector, signed
 * by the npm package jsonwebtoken (found through NODE_PATH), so that the
 * C verifier is checked against an implementation nobody here wrote.
 *
 * Time claims are fixed; check_jwt.c verifies with now = 1700000000.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const jwt = require('jsonwebtoken');

const dir = process.argv[2];
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
const secret = read('secret.txt').trim();
const keys = {
  HS: secret,
  RS: read('rsa.pem'),
  PS: read('rsa.pem'),
  ES256: read('ec256.pem'),
  ES384: read('ec384.pem'),
};

const NOW = 1700000000;
const FAR = 4102444800; /* 2100-01-01 */

function keyFor(alg) {
  return keys[alg.slice(0, 2)] || keys[alg];
}

function out(name, alg, payload, options) {
  const opts = Object.assign({ algorithm: alg }, options || {});
  console.log(name + ' ' + jwt.sign(payload, keyFor(alg), opts));
}

const base = { sub: 'user-node', iat: NOW, exp: FAR };
for (const alg of ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512',
                   'ES256', 'ES384']) {
  out('node_' + alg.toLowerCase(), alg, base);
}
/* RSASSA-PSS is a valid JWS alg that seatcast does not support */
out('node_ps256', 'PS256', base);

out('node_expired', 'HS256', { sub: 'u1', iat: 1590000000, exp: 1600000000 });
out('node_exp_leeway', 'HS256', { sub: 'u1', iat: NOW - 60, exp: NOW - 3 });
out('node_nbf_future', 'HS256', { sub: 'u1', iat: NOW, nbf: 1800000000 });
out('node_nbf_leeway', 'HS256', { sub: 'u1', iat: NOW, nbf: NOW + 3 });
out('node_iss_aud', 'RS256',
    { sub: 'u1', iss: 'booking-api', aud: 'seatcast', iat: NOW, exp: FAR });
out('node_aud_array', 'ES256',
    { sub: 'u1', iss: 'booking-api', aud: ['web', 'seatcast'], iat: NOW });
out('node_aud_other', 'HS256',
    { sub: 'u1', iss: 'other-api', aud: ['web', 'mobile'], iat: NOW });
out('node_userid', 'HS384', { userId: 'u-42', id: 7, iat: NOW, exp: FAR });
out('node_id_numeric', 'HS256', { id: 42, iat: NOW });
out('node_sub_numeric', 'RS512', { sub: 9007199254740991, iat: NOW });
out('node_events', 'HS256',
    { sub: 'u1', events: [3, '1', 9007199254740991, 3], iat: NOW });
out('node_events_bad', 'HS256', { sub: 'u1', events: [1, 'x'], iat: NOW });
out('node_no_user', 'HS256', { iss: 'booking-api', iat: NOW, exp: FAR });
out('node_jti', 'ES384', { sub: 'u1', iat: NOW }, { jwtid: 'tok-123' });
/* same header and claim bytes as check_jwt.c gives sc_jwt_sign_hs256 */
out('node_agree', 'HS256', { sub: 'agree', exp: FAR, jti: 'j1' },
    { noTimestamp: true });
