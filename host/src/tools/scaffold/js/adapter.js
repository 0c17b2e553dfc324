// `{{name}}`: an lmhost adapter, scaffolded by `lmhost adapter new --lang js`.
//
// A minimal chat-template adapter: the prompt is the model's chat template (or
// the entry's `custom_chat_template`) rendered by the host; the answer is the raw
// output trimmed, cut after `output_split_prefix` / `cot_end_tag`, with every
// match of the `eos_to_cull` regex removed (ECMAScript dialect, flags `gu`).
// Change what you need, then `lmhost adapter build` and
// `lmhost adapter check {{name}}.wasm`.
//
// Exported functions return their ok value or throw a plain `{ tag, val }`
// error variant; throwing an Error traps (a crashed adapter). WIT names are
// camelCase here (`shape-request` -> `shapeRequest`, `spec-json` -> `specJson`).

import { renderTemplate } from 'lmhost:adapter/host@0.1.0';

const invalid = (message) => ({ tag: 'invalid-input', val: message });

function parseSpec(model) {
  let spec;
  try {
    spec = JSON.parse(model.specJson);
  } catch (_) {
    spec = undefined;
  }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw invalid(`registry entry of \`${model.name}\` is not a JSON object`);
  }
  return spec;
}

function stringKey(model, spec, key) {
  const value = spec[key];
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'string') return value;
  throw invalid(`\`${key}\` of \`${model.name}\` must be a string`);
}

function chooseTemplate(model, spec) {
  const custom = stringKey(model, spec, 'custom_chat_template');
  const premade = typeof spec.premade_chat_template === 'boolean' ? spec.premade_chat_template : true;
  if (!premade && custom !== null) return custom;
  if (model.builtinTemplate !== undefined && model.builtinTemplate !== null) return model.builtinTemplate;
  if (custom !== null) return custom;
  throw {
    tag: 'unsupported',
    val: `\`${model.name}\` has no chat template: the model file ships none and the entry sets no \`custom_chat_template\``,
  };
}

function afterLast(text, sep) {
  const i = text.lastIndexOf(sep);
  return i < 0 ? null : text.slice(i + sep.length);
}

function postProcess(model, raw) {
  const spec = parseSpec(model);
  let text = raw.trim();
  const prefix = stringKey(model, spec, 'output_split_prefix');
  if (prefix !== null && afterLast(text, prefix) !== null) text = afterLast(text, prefix);
  const tag = stringKey(model, spec, 'cot_end_tag');
  if (tag !== null && afterLast(text, tag) !== null) text = afterLast(text, tag).trim();
  const pattern = stringKey(model, spec, 'eos_to_cull');
  if (pattern !== null) {
    let re;
    try {
      re = new RegExp(pattern, 'gu');
    } catch (e) {
      throw invalid(`\`eos_to_cull\` of \`${model.name}\` is not a valid regex: ${e.message}`);
    }
    text = text.replace(re, '');
  }
  return text;
}

const completion = (text) => ({ text, promptTokens: undefined, completionTokens: undefined, finishReason: undefined });

function shapeRequest(model, messages, params) {
  const template = chooseTemplate(model, parseSpec(model));
  const context = {
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: true,
    bos_token: model.bosToken ?? '',
    eos_token: model.eosToken ?? '',
  };
  let text;
  try {
    text = renderTemplate(template, JSON.stringify(context));
  } catch (e) {
    throw invalid(`chat template of \`${model.name}\` failed to render: ${e && e.payload !== undefined ? e.payload : e}`);
  }
  // A template that writes the BOS token itself must not get a second one.
  const bos = model.bosToken;
  const startsWithBos = typeof bos === 'string' && bos.length > 0 && text.startsWith(bos);
  return { tag: 'prompt', val: { text, stop: params.stop, addBos: model.addBos && !startsWithBos } };
}

function parseResponse(model, raw) {
  return completion(postProcess(model, raw));
}

// The resource: buffers, and hands the whole answer over at `finish` (the
// constructor cannot fail, so the entry is read there).
class ResponseStream {
  constructor(model) {
    this.model = model;
    this.raw = '';
  }

  push(chunk) {
    this.raw += chunk;
    return '';
  }

  finish() {
    return completion(postProcess(this.model, this.raw));
  }
}

export const modelAdapter = { shapeRequest, parseResponse, ResponseStream };
