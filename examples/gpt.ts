import { AdamW, BPETokenizer, GPT, Generator, generate, loadCheckpoint, randint, saveCheckpoint, tensor, tidy } from 'kilnjs';

// data: a tokenizer trained on the text, and the text as one stream of token ids
const text = 'the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat and a log. '.repeat(40);
const tokenizer = BPETokenizer.train([text], { vocabSize: 300 });
const tokens = tokenizer.encode(text);
const ids = tensor(Int32Array.from(tokens), [tokens.length], { dtype: 'i32' });
const T = 32;

// model and optimizer, as in PyTorch
const config = { vocabSize: tokenizer.vocabSize, blockSize: T, nLayer: 2, nHead: 2, nEmbd: 64 };
const model = new GPT(config, { generator: new Generator(0) });
const optimizer = new AdamW(model.parameters(), { lr: 3e-3 });
const gen = new Generator(1);

// the loop: random windows of T + 1 tokens, forward, backward, step
for (let step = 1; step <= 60; step++) {
  const loss = tidy(() => {
    const starts = randint(0, tokens.length - T - 1, [8], { generator: gen });
    const windows = starts.unsqueeze(1).add(tensor(Int32Array.from({ length: T + 1 }, (_, i) => i), [1, T + 1], { dtype: 'i32' }));
    const batch = ids.indexSelect(0, windows.reshape([-1])).reshape([8, T + 1]);
    const { loss } = model.forward(batch.narrow(1, 0, T), batch.narrow(1, 1, T));
    optimizer.zeroGrad();
    loss!.backward();
    optimizer.step();
    return loss!;
  });
  if (step % 20 === 0) console.log(`step ${step}: loss ${(await loss.item()).toFixed(3)}`);
  loss.dispose();
}

// save, load into a fresh model, sample
const file = await saveCheckpoint('tiny-gpt.safetensors', { model, optimizer, step: 60 });
const restored = new GPT(config);
await loadCheckpoint(file, { model: restored });
restored.eval();
const start = tokenizer.encode('the cat');
const prompt = tensor(Int32Array.from(start), [1, start.length], { dtype: 'i32' });
const out = await generate(restored, prompt, { maxNewTokens: 12, temperature: 0.8, topK: 10, generator: new Generator(2) });
console.log('sample:', tokenizer.decode(Array.from(await out.data())));
