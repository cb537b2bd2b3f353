/* The peer of `npm run bench -- ddp`: MPI_Allreduce (sum, in place) of n floats, timed as kiln's
 * allReduce is (warm-up calls, then reps; the median). Prints one JSON line on rank 0:
 * {"n": n, "median_ms": t}. Build: mpicc -O2 bench/native/allreduce.c -o allreduce. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const long n = argc > 1 ? atol(argv[1]) : 1 << 20;
  const int reps = argc > 2 ? atoi(argv[2]) : 30;
  float* buf = malloc(sizeof(float) * (size_t)n);
  for (long i = 0; i < n; i++) buf[i] = (float)(rank + 1) * 1e-3f;
  double* t = malloc(sizeof(double) * (size_t)reps);
  for (int i = 0; i < 5; i++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  for (int i = 0; i < reps; i++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    t[i] = (MPI_Wtime() - t0) * 1e3;
  }
  qsort(t, (size_t)reps, sizeof(double), cmp);
  if (rank == 0) printf("{\"n\": %ld, \"median_ms\": %.6f}\n", n, t[reps / 2]);
  free(buf);
  free(t);
  MPI_Finalize();
  return 0;
}
