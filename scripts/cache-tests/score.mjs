// Scores cache-tests result files the way cache-tests.fyi does: a required
// test passes only when it passed and every test it depends on passed.
//
//   node score.mjs <suite dir> <name>=<results.json> ...
//
// Prints required passes per suite group and in total, one column per file.
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, ...inputs] = process.argv.slice(2)
const load = async rel => (await import(pathToFileURL(path.join(suiteDir, rel)).href)).default
const suites = await load('tests/index.mjs')
// The suite's own CLI adds these; score them the same way.
if (fs.existsSync(path.join(suiteDir, 'tests/surrogate-control.mjs'))) {
  suites.push(await load('tests/surrogate-control.mjs'))
}

const lookup = new Map()
for (const suite of suites) for (const test of suite.tests) lookup.set(test.id, test)

function passes (id, results, seen = new Set()) {
  const test = lookup.get(id)
  const result = results[id]
  if (result !== true || seen.has(id)) return false
  seen.add(id)
  return (test.depends_on || []).every(dep => passes(dep, results, seen))
}

const columns = inputs.map(arg => {
  const [name, file] = arg.split('=')
  return { name, results: JSON.parse(fs.readFileSync(file, 'utf8')) }
})
const rows = []
const totals = columns.map(() => 0)
let required = 0
for (const suite of suites) {
  const tests = suite.tests.filter(t => !t.browser_only && (t.kind || 'required') === 'required')
  if (tests.length === 0) continue
  required += tests.length
  const counts = columns.map((c, i) => {
    const n = tests.filter(t => passes(t.id, c.results)).length
    totals[i] += n
    return n
  })
  rows.push([suite.id, tests.length, ...counts])
}
console.log(['group', 'required', ...columns.map(c => c.name)].join('\t'))
for (const row of rows) console.log(row.join('\t'))
console.log(['total', required, ...totals].join('\t'))
if (process.env.FAILURES) {
  const mine = columns[0]
  for (const [id, test] of lookup) {
    if (test.browser_only || (test.kind || 'required') !== 'required') continue
    if (!passes(id, mine.results)) {
      const r = mine.results[id]
      console.log(`FAIL ${id}: ${r === true ? 'a dependency failed' : JSON.stringify(r)}`)
    }
  }
}
