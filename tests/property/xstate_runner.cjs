// Runs exported XState machines for tests/property/test_differential_xstate.py.
//
// One request per stdin line: {"config": <machine config>, "conditions": [names],
// "runs": [[{held condition: bool}, [[event, {condition: bool}], ...]], ...]}. One
// answer per line: {"traces": [[configuration, ...], ...]}, the active state paths
// after the start and after each event, or {"error": text}. The guards "c" and "!c"
// read the held values, else those given with the event being sent (absent: false);
// every action is a no-op.
"use strict";
const { createMachine, createActor } = require("xstate");
const readline = require("readline");

let conditions = {};

function paths(value, prefix, out) {
  if (typeof value === "string") {
    out.push(prefix + value);
    return out;
  }
  for (const [key, inner] of Object.entries(value)) {
    out.push(prefix + key);
    paths(inner, prefix + key + ".", out);
  }
  return out;
}

function actionNames(node, out) {
  const lists = [...Object.values(node.on || {}), node.always || []];
  for (const transitions of lists) {
    for (const t of transitions) {
      for (const a of t.actions || []) out.add(typeof a === "string" ? a : a.type);
    }
  }
  for (const child of Object.values(node.states || {})) actionNames(child, out);
  return out;
}

function run(request) {
  const guards = {};
  for (const name of request.conditions) {
    guards[name] = () => Boolean(conditions[name]);
    guards["!" + name] = () => !conditions[name];
  }
  const actions = {};
  for (const name of actionNames(request.config, new Set())) actions[name] = () => {};
  const machine = createMachine(request.config, { guards, actions });
  const traces = [];
  for (const [held, sequence] of request.runs) {
    conditions = held;
    const actor = createActor(machine);
    let failure = null;
    actor.subscribe({ error: (err) => { failure = err; } });
    actor.start();
    const trace = [paths(actor.getSnapshot().value, "", []).sort()];
    for (const [event, values] of sequence) {
      conditions = { ...values, ...held };
      actor.send({ type: event });
      if (failure) throw failure;
      trace.push(paths(actor.getSnapshot().value, "", []).sort());
    }
    actor.stop();
    traces.push(trace);
  }
  return { traces };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let answer;
  try {
    answer = run(JSON.parse(line));
  } catch (err) {
    answer = { error: String(err && err.stack ? err.stack : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
