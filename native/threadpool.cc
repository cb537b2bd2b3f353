// The CPU thread pool: one per process, sized to the cores (KILN_NUM_THREADS or
// set_num_threads overrides). parallel_for hands out chunks through an atomic counter; the
// calling thread works too. Workers spin briefly before sleeping, since kernels arrive in quick
// succession during training.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels.h"

namespace kiln {
namespace {

thread_local bool in_parallel = false;

class Pool {
 public:
  explicit Pool(int threads) : size_(std::max(1, threads)) {
    for (int i = 1; i < size_; i++) workers_.emplace_back([this] { work(); });
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  int size() const { return size_; }

  void run(int64_t chunks, void (*fn)(void*, int64_t, int64_t), void* ctx, int64_t n, int64_t chunk) {
    std::lock_guard<std::mutex> job_lock(job_mu_);  // one parallel_for at a time
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    chunk_ = chunk;
    chunks_ = chunks;
    next_.store(0);
    uint64_t g;
    {
      std::lock_guard<std::mutex> lock(mu_);
      g = gen_.fetch_add(1) + 1;
    }
    cv_.notify_all();
    drain();
    // close the job: a worker that has not joined yet must not touch it; wait only for the
    // workers that did join (they may still run a chunk)
    closed_.store(g);
    while (active_.load() > 0) std::this_thread::yield();
  }

 private:
  void drain() {
    in_parallel = true;
    for (;;) {
      int64_t c = next_.fetch_add(1);
      if (c >= chunks_) break;
      int64_t b = c * chunk_;
      fn_(ctx_, b, std::min(n_, b + chunk_));
    }
    in_parallel = false;
  }

  void work() {
    uint64_t seen = 0;  // the generation at construction: no job can be missed
    for (;;) {
      // spin a little for the next job, then sleep
      int spins = 0;
      while (gen_.load(std::memory_order_acquire) == seen && spins < 20000) {
        spins++;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      if (gen_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return gen_.load() != seen; });
      }
      seen = gen_.load();
      if (stop_) return;
      // join the job only while it is open (jobs are numbered in order and closed in order): a
      // worker that wakes late must not run chunks of a job the caller has already returned from
      active_.fetch_add(1);
      if (closed_.load() < seen) drain();
      active_.fetch_sub(1);
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex mu_, job_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  bool stop_ = false;
  void (*fn_)(void*, int64_t, int64_t) = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> active_{0};
  std::atomic<uint64_t> closed_{0};
};

int default_threads() {
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? int(hc) : 1;
}

std::mutex pool_mu;
Pool* pool = nullptr;

Pool& get_pool() {
  std::lock_guard<std::mutex> lock(pool_mu);
  if (!pool) pool = new Pool(default_threads());
  return *pool;
}

}  // namespace

int num_threads() { return get_pool().size(); }

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(pool_mu);
  delete pool;
  pool = new Pool(n > 0 ? n : default_threads());
}

void parallel_for(int64_t n, int64_t grain, void (*fn)(void* ctx, int64_t begin, int64_t end), void* ctx) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  Pool& p = get_pool();
  int64_t max_chunks = (n + grain - 1) / grain;
  if (p.size() == 1 || max_chunks < 2 || in_parallel) {
    fn(ctx, 0, n);
    return;
  }
  // a few chunks per thread balances uneven work without much overhead
  int64_t chunks = std::min<int64_t>(max_chunks, int64_t(p.size()) * 4);
  int64_t chunk = (n + chunks - 1) / chunks;
  chunks = (n + chunk - 1) / chunk;
  p.run(chunks, fn, ctx, n, chunk);
}

}  // namespace kiln
