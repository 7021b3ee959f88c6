// dockerode pointed at a gvpod machine the way a Mac user does it:
// `eval "$(gvpod machine env)"` sets DOCKER_HOST, and `new Docker()` with no
// options reads it (docker-modem). Run by tests/machine.rs after that eval,
// with no other hint of where the API is: create, start, inspect, list and
// remove a pod, then check it is gone. Every check throws with what was
// expected; the last line is {"ok":true,"id":…} for the test to read.
'use strict';
const assert = require('node:assert/strict');
const Docker = require('dockerode');

async function main() {
  assert.match(process.env.DOCKER_HOST || '', /^unix:\/\/.+\/sock\/gvpod\.sock$/, 'DOCKER_HOST from machine env');
  assert.equal(process.env.GVPOD_SOCKET, undefined, 'no other hint of the socket');
  const docker = new Docker();

  const c = await docker.createContainer({
    Image: 'busybox',
    name: 'from-dockerode',
    HostConfig: { Runtime: 'runsc' },
    Env: ['VIA=machine-env'],
    Cmd: ['sh', '-c', 'echo "$VIA"; exec sleep 60'],
  });
  await c.start();

  const info = await c.inspect();
  assert.equal(info.Name, '/from-dockerode');
  assert.equal(info.Id, c.id);
  assert.equal(info.State.Running, true, 'State.Running after start');
  assert.ok(info.Config.Env.includes('VIA=machine-env'), `Env ${info.Config.Env}`);

  const running = await docker.listContainers();
  const mine = running.find((x) => x.Id === c.id);
  assert.ok(mine, `listed among ${running.map((x) => x.Names).join(' ')}`);
  assert.deepEqual(mine.Names, ['/from-dockerode']);
  assert.equal(mine.State, 'running');

  await c.remove({ force: true });
  await assert.rejects(c.inspect(), (e) => e.statusCode === 404, 'inspect after remove is a 404');
  const all = await docker.listContainers({ all: true });
  assert.ok(!all.some((x) => x.Id === c.id), 'gone from ps -a');

  console.log(JSON.stringify({ ok: true, id: c.id }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
