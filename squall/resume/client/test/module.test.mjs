// One source, two ways to load it: the classic script defines the global
// SquallResume (what a <script src> page uses), and the ES module exports
// the same functions.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import vm from 'node:vm';
import * as module from '../squall-resume.mjs';

const NAMES = ['DEFAULTS', 'ResumeError', 'compareOffsets', 'follow', 'parsePosition'];

test('the classic script defines SquallResume in a page of its own', () => {
  const context = vm.createContext({});
  vm.runInContext(readFileSync(new URL('../squall-resume.js', import.meta.url), 'utf8'), context);
  assert.deepEqual(Object.keys(context.SquallResume).sort(), NAMES);
  assert.equal(context.SquallResume.parsePosition('12-ab').offset, '12');
});

test('the module exports the same functions', () => {
  assert.deepEqual(Object.keys(module).filter((name) => name !== 'default').sort(), NAMES);
  assert.equal(module.follow, globalThis.SquallResume.follow);
  assert.equal(module.default.follow, module.follow);
});
