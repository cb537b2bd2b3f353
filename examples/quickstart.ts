import { tensor, randn, zeros, tidy, noGrad, manualSeed, mean, memory } from 'kilnjs';

manualSeed(0);
// data: y = 3·x₀ − 2·x₁ + 1 plus a little noise
const x = randn([64, 2]);
const y = tidy(() => x.matmul(tensor([[3], [-2]])).add(1).add(randn([64, 1]).mul(0.01)));

// a tiny model: one hidden layer of 8 tanh units
const w1 = randn([2, 8], { requiresGrad: true });
const b1 = zeros([8], { requiresGrad: true });
const w2 = randn([8, 1], { requiresGrad: true });
const params = [w1, b1, w2];

for (let step = 0; step < 300; step++) {
  const loss = tidy(() => {
    const pred = x.matmul(w1).add(b1).tanh().matmul(w2);
    const l = mean(pred.sub(y).square());
    l.backward();
    noGrad(() => params.forEach((p) => p.copy_(p.sub(p.grad!.mul(0.05)))));
    params.forEach((p) => p.zeroGrad());
    return l; // everything else the step made is freed here
  });
  // reading a value waits for the device: do it only when logging
  if (step % 100 === 0 || step === 299) console.log(`step ${step}: loss ${(await loss.item()).toFixed(4)}`);
  loss.dispose();
}
console.log('live tensors:', memory().tensors);
