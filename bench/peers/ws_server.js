// Peer for bench/fanout.py: the plain Node.js way to fan out live updates.
// One WebSocketServer; a Map topic -> Set of sockets; a "publish" frame from the driver is
// serialised once (one Buffer) and sent to every socket in the topic's Set.
//
// Protocol (JSON text frames, same shapes as omnitill's where they overlap):
//   {"type":"hello"}                          -> {"type":"welcome"}
//   {"type":"subscribe","topic":T}            -> {"type":"snapshot","topic":T,"seq":0,"state":{}}
//   {"type":"publish","topic":T,"delta":{..}} -> every subscriber of T gets the delta object
//
//   node bench/peers/ws_server.js PORT
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8202);
const topics = new Map();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: false, backlog: 4096 });

wss.on('connection', (ws) => {
  const mine = [];
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg.type === 'publish') {
      const subs = topics.get(msg.topic);
      if (!subs) return;
      const frame = Buffer.from(JSON.stringify(msg.delta));
      for (const c of subs) c.send(frame, { binary: false });
    } else if (msg.type === 'subscribe') {
      let subs = topics.get(msg.topic);
      if (!subs) topics.set(msg.topic, (subs = new Set()));
      subs.add(ws);
      mine.push(msg.topic);
      ws.send(JSON.stringify({ type: 'snapshot', topic: msg.topic, seq: 0, state: {} }));
    } else if (msg.type === 'hello') {
      ws.send('{"type":"welcome"}');
    }
  });
  ws.on('close', () => { for (const t of mine) { const s = topics.get(t); if (s) s.delete(ws); } });
  ws.on('error', () => {});
});

process.on('SIGTERM', () => process.exit(0));
