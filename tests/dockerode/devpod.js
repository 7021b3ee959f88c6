// The dev-pod platform's dockerode calls, unchanged, against gvpod's Docker
// API: create with runsc, limits, a published port, a restart policy, env
// and a working directory; start; inspect; one-shot stats (CPU % computable,
// memory usage and limit, eth0 counters); logs followed with timestamps; an
// exec with its output and exit code; stop; remove. Run by tests/dockerode.rs
// with GVPOD_SOCKET (the service's socket) and GVPOD_PORT (a free host port).
// Every check throws with what was expected; the exit status says it all.
'use strict';
const assert = require('node:assert/strict');
const http = require('node:http');
const { PassThrough } = require('node:stream');
const Docker = require('dockerode');

const docker = new Docker({ socketPath: process.env.GVPOD_SOCKET });
const port = process.env.GVPOD_PORT;

function get(path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function until(what, f, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Collects a multiplexed stream until `done(stdout)` or its end.
function collect(stream, done) {
  return new Promise((resolve, reject) => {
    const out = new PassThrough();
    const err = new PassThrough();
    let o = '';
    let e = '';
    out.on('data', (d) => {
      o += d;
      if (done && done(o)) {
        stream.destroy();
        resolve({ out: o, err: e });
      }
    });
    err.on('data', (d) => (e += d));
    docker.modem.demuxStream(stream, out, err);
    stream.on('end', () => resolve({ out: o, err: e }));
    stream.on('close', () => resolve({ out: o, err: e }));
    stream.on('error', reject);
  });
}

async function main() {
  const memory = 256 * 1024 * 1024;
  const c = await docker.createContainer({
    Image: 'busybox',
    name: 'devpod',
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: {
      Runtime: 'runsc',
      Memory: memory,
      CpuQuota: 50000,
      PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: port }] },
      RestartPolicy: { Name: 'unless-stopped' },
    },
    Env: ['GREETING=hello'],
    WorkingDir: '/workspace',
    Cmd: [
      'sh',
      '-c',
      'echo "$GREETING from $(pwd)" > index.html; httpd -p 8080 -h /workspace; ' +
        'while true; do echo tick; echo tock >&2; sleep 0.3; done',
    ],
  });
  await c.start();

  const info = await c.inspect();
  assert.equal(info.State.Running, true, 'State.Running after start');
  assert.equal(info.State.ExitCode, 0);
  assert.ok(Date.parse(info.State.StartedAt) > Date.now() - 60000, `StartedAt ${info.State.StartedAt}`);
  assert.equal(info.State.FinishedAt, '0001-01-01T00:00:00Z');
  assert.equal(info.HostConfig.RestartPolicy.Name, 'unless-stopped');
  assert.equal(info.HostConfig.Memory, memory);

  // The published port reaches the pod's server (and makes eth0 traffic).
  const page = await until('the pod to serve', () => get('/'));
  assert.equal(page.trim(), 'hello from /workspace');

  const s = await c.stats({ stream: false });
  const cpuDelta = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
  const sysDelta = s.cpu_stats.system_cpu_usage - s.precpu_stats.system_cpu_usage;
  assert.ok(cpuDelta >= 0 && sysDelta > 0, `CPU % computable: cpu ${cpuDelta}, system ${sysDelta}`);
  assert.ok(s.cpu_stats.online_cpus >= 1, 'online_cpus');
  const cpuPercent = (cpuDelta / sysDelta) * s.cpu_stats.online_cpus * 100;
  assert.ok(Number.isFinite(cpuPercent), `CPU % ${cpuPercent}`);
  assert.ok(s.memory_stats.usage > 0, 'memory_stats.usage');
  assert.equal(s.memory_stats.limit, memory, 'memory_stats.limit is -m');
  assert.ok(s.networks.eth0.rx_bytes > 0 && s.networks.eth0.tx_bytes > 0, 'eth0 counters');

  const logs = await c.logs({ follow: true, stdout: true, stderr: true, timestamps: true });
  const got = await collect(logs, (o) => o.split('tick').length > 2);
  const first = got.out.split('\n')[0];
  const [t, text] = [first.slice(0, first.indexOf(' ')), first.slice(first.indexOf(' ') + 1)];
  assert.ok(!Number.isNaN(Date.parse(t)), `a timestamp first: ${first}`);
  assert.equal(text, 'tick');

  const e = await c.exec({
    Cmd: ['sh', '-c', 'echo in-exec; echo to-stderr >&2; exit 3'],
    AttachStdout: true,
    AttachStderr: true,
  });
  const es = await e.start({});
  const eout = await collect(es);
  assert.equal(eout.out, 'in-exec\n');
  assert.equal(eout.err, 'to-stderr\n');
  const ei = await e.inspect();
  assert.equal(ei.ExitCode, 3, 'exec ExitCode');
  assert.equal(ei.Running, false);

  await c.stop({ t: 1 });
  const after = await c.inspect();
  assert.equal(after.State.Running, false);
  assert.ok(Date.parse(after.State.FinishedAt) >= Date.parse(after.State.StartedAt), 'FinishedAt');
  assert.notEqual(after.State.ExitCode, 0, 'stopped by a signal');
  await c.remove({ force: true });
  await assert.rejects(c.inspect(), (err) => err.statusCode === 404, 'gone after remove');
  console.log(JSON.stringify({ ok: true, cpuPercent, rx: s.networks.eth0.rx_bytes }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
