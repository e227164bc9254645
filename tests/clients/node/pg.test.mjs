// node-postgres (pg) against o11ydb. Connection settings come from the
// standard PGHOST / PGPORT / PGUSER / PGDATABASE variables (set by
// tests/clients/test_node_postgres.py, which starts the server).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';

let client;

before(async () => {
  client = new pg.Client();
  await client.connect();
});

after(async () => {
  await client.end();
});

test('simple query', async () => {
  const r = await client.query('SELECT 1::int4 AS one, $$o11ydb$$ AS name');
  assert.deepEqual(r.rows, [{ one: 1, name: 'o11ydb' }]);
});

// [SQL type, value sent, value expected back (text format, pg's default parsers)]
const values = [
  ['int2', 7, 7],
  ['int4', -70000, -70000],
  ['int8', '1099511627776', '1099511627776'],
  ['float4', 1.5, 1.5],
  ['float8', 0.1, 0.1],
  ['numeric', '1.25', '1.25'],
  ['text', 'héllo ✓', 'héllo ✓'],
  ['bool', true, true],
  ['timestamptz', new Date('2026-01-01T12:00:00.250Z'), new Date('2026-01-01T12:00:00.250Z')],
  ['timestamp', '2026-01-01 01:02:03', new Date('2026-01-01T01:02:03Z')],
  ['date', '2026-01-02', new Date('2026-01-02T00:00:00Z')],
  ['jsonb', '{"a": [1, 2]}', { a: [1, 2] }],
  ['json', '{"b": null}', { b: null }],
  ['bytea', Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
  ['int8[]', [1, 2, 3], ['1', '2', '3']],
  ['float8[]', [1.5, -2], [1.5, -2]],
  ['text[]', ['a', 'b c'], ['a', 'b c']],
];

for (const [type, sent, expected] of values) {
  test(`parameter and result of type ${type}`, async () => {
    const r = await client.query(
      `SELECT $1::${type} AS v, $2::${type} IS NULL AS n, $2::${type} AS nv`, [sent, null]);
    const row = r.rows[0];
    if (type === 'numeric') {
      assert.equal(Number(row.v), Number(expected));
    } else {
      assert.deepEqual(row.v, expected);
    }
    assert.equal(row.n, true);
    assert.equal(row.nv, null);
  });
}

test('interval parameter and result', async () => {
  const r = await client.query('SELECT $1::interval AS v, $2::interval AS nv', ['1 day 00:00:05', null]);
  assert.equal(r.rows[0].nv, null, 'a NULL interval stays NULL');
  assert.equal(r.rows[0].v.days, 1);
  assert.equal(r.rows[0].v.seconds, 5);
  assert.equal(r.fields[0].dataTypeID, 1186);
});

test('result types are described with their Postgres oids', async () => {
  const r = await client.query(
    "SELECT 1::int8 AS i, 'x'::text AS t, '{}'::jsonb AS j, [1, 2] AS a, ['x'] AS s, now() AS ts");
  assert.deepEqual(r.fields.map((f) => [f.name, f.dataTypeID]),
    [['i', 20], ['t', 25], ['j', 3802], ['a', 1016], ['s', 1009], ['ts', 1184]]);
});

// pg's binary parsers cover few types (its binary timestamptz parser loses
// precision on 63-bit values), so binary results are checked for those it
// decodes exactly; asyncpg and pgjdbc check every type in binary.
test('binary results', async () => {
  const r = await client.query({
    text: 'SELECT $1::int4 AS i, $2::int8 AS b, $3::float8 AS f, $4::bool AS t, $5::text AS s',
    values: [42, '9007199254740993', 2.5, true, 'bin'],
    binary: true,
  });
  const row = r.rows[0];
  assert.equal(row.i, 42);
  assert.equal(String(row.b), '9007199254740993');
  assert.equal(row.f, 2.5);
  assert.equal(row.t, true);
  assert.equal(row.s, 'bin');
});

test('parameterised insert and read back', async () => {
  const ts = new Date('2026-01-01T00:00:00Z');
  const ins = await client.query(
    "INSERT INTO logs (timestamp, labels, line, severity) VALUES ($1, map(['job'], ['node']), $2, $3)",
    [ts, 'node line', 'warn']);
  assert.equal(ins.rowCount, 1);
  const r = await client.query(
    'SELECT timestamp, labels, line, severity FROM logs WHERE line = $1', ['node line']);
  assert.deepEqual(r.rows, [{ timestamp: ts, labels: { job: 'node' }, line: 'node line', severity: 'warn' }]);
});

test('errors carry the SQLSTATE in code and the connection survives', async () => {
  await assert.rejects(client.query('SELECT nope FROM logs'), (e) => e.code === '42703');
  await assert.rejects(client.query('SELEC 1'), (e) => e.code === '42601' && e.position === '1');
  await assert.rejects(client.query('SELECT * FROM nope WHERE x = $1', [1]), (e) => e.code === '42P01');
  await assert.rejects(client.query('SELECT $1::jsonb', ['{not json']), (e) => e.code === '22P02');
  // Integer literals are int8 in o11ydb (int4 in Postgres), so int4 + 1 is an int8.
  const r = await client.query('SELECT $1::int4 + 1 AS v', [41]);
  assert.equal(r.rows[0].v, '42');
});

test('prepared statement reuse by name', async () => {
  for (const service of ['a', 'b', 'c']) {
    const r = await client.query({ name: 'upper', text: 'SELECT upper($1::text) AS u', values: [service] });
    assert.equal(r.rows[0].u, service.toUpperCase());
  }
});
