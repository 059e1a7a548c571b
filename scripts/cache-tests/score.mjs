// Scores cache-tests result files the way cache-tests.fyi does: a required
// test passes only when it passed and every test it depends on passed.
//
//   node score.mjs [--expected FILE] [--write-expected FILE] <suite dir> <name>=<results.json> ...
//
// The suite dir is either layout: the npm package http-cache-tests (0.4.5:
// tests/, results/, cli.mjs) or a checkout of github.com/http-tests/cache-tests
// (tests/, results/ with results/index.mjs, test-engine/). Prints required
// passes per suite group and in total, one column per results file given,
// then one per published result of another cache shipped in the suite's
// results/ (browsers left out).
//
// FAILURES=1 lists every required test the first file does not pass.
// --expected FILE: FILE holds one test id per line (# comments); exits 1
//   when one of them is not a required pass of the first file, and reports
//   (without failing) required passes that FILE does not list yet.
// --write-expected FILE: writes the first file's required passes to FILE.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const args = process.argv.slice(2)
let expectedFile, writeFile
while (args[0] && args[0].startsWith('--')) {
  const flag = args.shift()
  if (flag === '--expected') expectedFile = args.shift()
  else if (flag === '--write-expected') writeFile = args.shift()
  else throw new Error(`unknown flag ${flag}`)
}
const [suiteDir, ...inputs] = args
if (!suiteDir || inputs.length === 0) {
  console.error('usage: node score.mjs [--expected FILE] [--write-expected FILE] <suite dir> <name>=<results.json> ...')
  process.exit(2)
}
const load = async rel => (await import(pathToFileURL(path.join(suiteDir, rel)).href)).default
const suites = [...await load('tests/index.mjs')]
// The npm package's CLI adds this group on top of tests/index.mjs; score it
// the same way. (The current suite has CDN-Cache-Control in the index.)
if (fs.existsSync(path.join(suiteDir, 'tests/surrogate-control.mjs')) &&
    !suites.some(s => s.id === 'surrogate-control')) {
  suites.push(await load('tests/surrogate-control.mjs'))
}

const lookup = new Map()
for (const suite of suites) for (const test of suite.tests) lookup.set(test.id, test)
const isRequired = test => !test.browser_only && (test.kind || 'required') === 'required'

// A test counts when its result is true and so is each dependency's, all the
// way down (cache-tests.fyi shows a dependency failure otherwise).
function scorer (results) {
  const memo = new Map()
  const passes = (id, path = new Set()) => {
    if (memo.has(id)) return memo.get(id)
    if (path.has(id)) return false
    path.add(id)
    const test = lookup.get(id)
    const ok = results[id] === true && test !== undefined &&
      (test.depends_on || []).every(dep => passes(dep, path))
    path.delete(id)
    memo.set(id, ok)
    return ok
  }
  return passes
}

// The published results of other caches: results/index.mjs names them in the
// current suite; the npm package ships the files alone.
async function peers () {
  const dir = path.join(suiteDir, 'results')
  if (fs.existsSync(path.join(dir, 'index.mjs'))) {
    const index = await load('results/index.mjs')
    return index.filter(p => p.type !== 'browser')
      .map(p => ({ name: p.name, version: p.version, file: path.join(dir, p.file) }))
  }
  return ['nginx', 'varnish', 'squid', 'trafficserver', 'apache', 'fastly']
    .map(name => ({ name, file: path.join(dir, `${name}.json`) }))
    .filter(p => fs.existsSync(p.file))
}

const columns = inputs.map(arg => {
  const at = arg.indexOf('=')
  if (at < 1) throw new Error(`expected <name>=<results.json>, not ${arg}`)
  return { name: arg.slice(0, at), file: arg.slice(at + 1) }
}).concat(await peers()).map(c => {
  const results = JSON.parse(fs.readFileSync(c.file, 'utf8'))
  return { ...c, results, passes: scorer(results) }
})

const rows = []
const totals = columns.map(() => 0)
let required = 0
for (const suite of suites) {
  const tests = suite.tests.filter(isRequired)
  if (tests.length === 0) continue
  required += tests.length
  const counts = columns.map((c, i) => {
    const n = tests.filter(t => c.passes(t.id)).length
    totals[i] += n
    return n
  })
  rows.push([suite.id, tests.length, ...counts])
}
console.log(['group', 'required', ...columns.map(c => c.name)].join('\t'))
for (const row of rows) console.log(row.join('\t'))
console.log(['total', required, ...totals].join('\t'))
const versions = columns.filter(c => c.version).map(c => `${c.name} ${c.version}`)
if (versions.length) console.log(`published: ${versions.join(', ')}`)

const mine = columns[0]
const requiredIds = [...lookup.values()].filter(isRequired).map(t => t.id)
const failing = requiredIds.filter(id => !mine.passes(id))
if (process.env.FAILURES) {
  for (const id of failing) {
    const r = mine.results[id]
    const why = r === true
      ? `a dependency failed (${lookup.get(id).depends_on.filter(d => !mine.passes(d)).join(', ')})`
      : r === undefined ? 'not run' : JSON.stringify(r)
    console.log(`FAIL ${id}: ${why}`)
  }
}

if (writeFile) {
  const passing = requiredIds.filter(id => mine.passes(id)).sort()
  const header = '# Required cache-tests the host passes, one test id a line. scripts/test.sh\n' +
    '# fails when one of them does not. Rewritten by WRITE_EXPECTED=<this file>\n' +
    '# SUITE=<npm or current> scripts/cache-tests/run.sh (docs/caching.md).\n'
  fs.writeFileSync(writeFile, header + passing.join('\n') + '\n')
  console.error(`wrote ${passing.length} required passes to ${writeFile}`)
}

if (expectedFile) {
  const expected = fs.readFileSync(expectedFile, 'utf8').split('\n')
    .map(line => line.replace(/#.*/, '').trim()).filter(Boolean)
  const unknown = expected.filter(id => !lookup.has(id))
  const lost = expected.filter(id => lookup.has(id) && !mine.passes(id))
  const listed = new Set(expected)
  const gained = requiredIds.filter(id => mine.passes(id) && !listed.has(id))
  for (const id of gained) console.log(`NEW PASS ${id} (not in ${expectedFile} yet)`)
  for (const id of unknown) console.log(`UNKNOWN ${id}: listed in ${expectedFile}, not a test of this suite`)
  for (const id of lost) {
    const r = mine.results[id]
    console.log(`REGRESSION ${id}: ${r === true ? 'a dependency failed' : JSON.stringify(r)}`)
  }
  if (lost.length || unknown.length) {
    console.log(`${lost.length} expected pass(es) failed, ${unknown.length} unknown id(s) (${expectedFile})`)
    process.exit(1)
  }
  console.log(`all ${expected.length} expected passes pass (${expectedFile})` +
    (gained.length ? `; ${gained.length} new pass(es) to add` : ''))
}
