// An application backend mints a Switchboard access token (docs/auth.md).
// SWITCHBOARD_KEY is one of the server's --api-keys, "KEY_ID:SECRET".
import jwt from 'jsonwebtoken';

const [kid, secret] = process.env.SWITCHBOARD_KEY.split(/:(.*)/s);
const token = jwt.sign(
  { sub: 'user-42', room: 'sales', join: true, turn: true, name: 'Alice', meta: { role: 'host' } },
  secret,
  { algorithm: 'HS256', keyid: kid, expiresIn: '1h' },
);
console.log(token);
