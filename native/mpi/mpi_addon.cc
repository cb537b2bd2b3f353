// kiln's MPI addon (kiln_mpi.node): the collectives of src/distributed/mpi.ts over Open MPI (or
// any MPI), built only where CMake finds MPI and loaded only when a Communicator is made. Every
// call works in place on host memory (a typed array's bytes), checked here: the TypeScript side
// has already checked that the ranks agree on shapes and dtypes.
#include <mpi.h>
#include <napi.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

namespace {

// dtype codes (src/distributed/mpi.ts DTYPE_CODE): 0 f32, 1 f64, 2 i32, 3 u8
MPI_Datatype datatype(const Napi::CallbackInfo& info, int code) {
  switch (code) {
    case 0: return MPI_FLOAT;
    case 1: return MPI_DOUBLE;
    case 2: return MPI_INT;
    case 3: return MPI_UNSIGNED_CHAR;
  }
  throw Napi::Error::New(info.Env(), "mpi: bad dtype code " + std::to_string(code));
}

// op codes: 0 sum, 1 max, 2 min
MPI_Op reduction(const Napi::CallbackInfo& info, int code) {
  switch (code) {
    case 0: return MPI_SUM;
    case 1: return MPI_MAX;
    case 2: return MPI_MIN;
  }
  throw Napi::Error::New(info.Env(), "mpi: bad op code " + std::to_string(code));
}

int item_size(int code) { return code == 0 || code == 2 ? 4 : code == 1 ? 8 : 1; }

// The bytes of a typed array argument, and its element count for dtype `code`.
void* bytes(const Napi::CallbackInfo& info, size_t i, int code, int64_t* count) {
  if (!info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "mpi: argument " + std::to_string(i) + " must be a typed array");
  Napi::TypedArray a = info[i].As<Napi::TypedArray>();
  const size_t n = a.ByteLength();
  if (n % size_t(item_size(code)) != 0) throw Napi::Error::New(info.Env(), "mpi: a buffer's bytes are not whole elements of its dtype");
  *count = int64_t(n / size_t(item_size(code)));
  if (*count > INT32_MAX) throw Napi::Error::New(info.Env(), "mpi: more than 2^31 - 1 elements in one call");
  return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}

void check(const Napi::CallbackInfo& info, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Napi::Error::New(info.Env(), std::string("mpi: ") + what + " failed: " + std::string(msg, size_t(len)));
}

int code_arg(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }

// Seconds a call may wait for the other ranks (init's argument; KILN_MPI_TIMEOUT on the JS side).
double timeout_s = 600;
int world_rank = 0;

// The call in progress (a blocking MPI call cannot be interrupted): its name and when it began.
// A watchdog thread ends the process when one has waited longer than timeout_s, so a rank that
// died, hangs or makes another call turns into an exit with a message on the ranks waiting for it
// (and mpirun then ends the job) instead of processes that never return. Measured: MPI's
// non-blocking collectives polled with a deadline would give a catchable Error instead, but
// Open MPI's MPI_Iallreduce (libnbc) took 2.5x the time of MPI_Allreduce for 1-16 MiB.
std::atomic<int64_t> call_started_ns{0};
std::atomic<const char*> call_name{nullptr};

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct InCall {
  explicit InCall(const char* what) {
    call_name.store(what);
    call_started_ns.store(now_ns());
  }
  ~InCall() { call_started_ns.store(0); }
};

void start_watchdog() {
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int64_t t0 = call_started_ns.load();
      if (t0 == 0 || double(now_ns() - t0) / 1e9 <= timeout_s) continue;
      const std::string msg = "kiln: rank " + std::to_string(world_rank) + ": " + call_name.load() + " has waited " + std::to_string(int(timeout_s)) +
                              " s for the other ranks: another rank has died, hangs, or is not making the same call; ending this process (KILN_MPI_TIMEOUT sets the limit)\n";
      ssize_t ignored = write(2, msg.data(), msg.size());
      (void)ignored;
      _exit(70);
    }
  }).detach();
}

// init(timeoutSeconds) → { rank, size }: MPI_Init_thread (funneled: only the JS thread calls MPI) once
Napi::Value Init(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) timeout_s = info[0].As<Napi::Number>().DoubleValue();
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    check(info, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    // errors come back as codes (and become JS Errors) instead of aborting the job
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    start_watchdog();
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("rank", rank);
  o.Set("size", size);
  return o;
}

// allReduce(buf, dtype, op): in place
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 1);
  int64_t n = 0;
  void* p = bytes(info, 0, dt, &n);
  InCall call("MPI_Allreduce");
  check(info, MPI_Allreduce(MPI_IN_PLACE, p, int(n), datatype(info, dt), reduction(info, code_arg(info, 2)), MPI_COMM_WORLD), "MPI_Allreduce");
  return info.Env().Undefined();
}

// broadcast(buf, dtype, root): in place
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 1);
  int64_t n = 0;
  void* p = bytes(info, 0, dt, &n);
  InCall call("MPI_Bcast");
  check(info, MPI_Bcast(p, int(n), datatype(info, dt), code_arg(info, 2), MPI_COMM_WORLD), "MPI_Bcast");
  return info.Env().Undefined();
}

// allGather(send, recv, dtype): recv holds size × send's elements, rank r's at r·n
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 2);
  int64_t n = 0, m = 0;
  void* s = bytes(info, 0, dt, &n);
  void* r = bytes(info, 1, dt, &m);
  if (m != n * world_size()) throw Napi::Error::New(info.Env(), "mpi: allGather's output must hold size × the input's elements");
  InCall call("MPI_Allgather");
  check(info, MPI_Allgather(s, int(n), datatype(info, dt), r, int(n), datatype(info, dt), MPI_COMM_WORLD), "MPI_Allgather");
  return info.Env().Undefined();
}

// reduceScatter(send, recv, dtype, op): send holds size × recv's elements; rank r gets block r of the reduction
Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 2);
  int64_t n = 0, m = 0;
  void* s = bytes(info, 0, dt, &n);
  void* r = bytes(info, 1, dt, &m);
  if (n != m * world_size()) throw Napi::Error::New(info.Env(), "mpi: reduceScatter's input must hold size × the output's elements");
  InCall call("MPI_Reduce_scatter_block");
  check(info, MPI_Reduce_scatter_block(s, r, int(m), datatype(info, dt), reduction(info, code_arg(info, 3)), MPI_COMM_WORLD), "MPI_Reduce_scatter_block");
  return info.Env().Undefined();
}

// send(buf, dtype, dest, tag) / recv(buf, dtype, source, tag)
Napi::Value Send(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 1);
  int64_t n = 0;
  void* p = bytes(info, 0, dt, &n);
  InCall call("MPI_Send");
  check(info, MPI_Send(p, int(n), datatype(info, dt), code_arg(info, 2), code_arg(info, 3), MPI_COMM_WORLD), "MPI_Send");
  return info.Env().Undefined();
}

Napi::Value Recv(const Napi::CallbackInfo& info) {
  const int dt = code_arg(info, 1);
  int64_t n = 0;
  void* p = bytes(info, 0, dt, &n);
  InCall call("MPI_Recv");
  check(info, MPI_Recv(p, int(n), datatype(info, dt), code_arg(info, 2), code_arg(info, 3), MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv");
  return info.Env().Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  InCall call("MPI_Barrier");
  check(info, MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  return info.Env().Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  // not watched: a rank done early waits here as long as the others work on (rank 0's final
  // evaluation); should they wait for it instead, their own watchdog ends the job
  if (inited && !finalized) MPI_Finalize();
  return info.Env().Undefined();
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("allGather", Napi::Function::New(env, AllGather));
  exports.Set("reduceScatter", Napi::Function::New(env, ReduceScatter));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("recv", Napi::Function::New(env, Recv));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_mpi, Register)
