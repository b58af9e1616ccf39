// Tests of the lab's object model (lab/model/): the three reference-count modes keep counts exact
// where they should, a freed object is poisoned and its later use counted, and the interpreted
// workload computes what it claims.
#include <gtest/gtest.h>

#include <concur/gil.hpp>
#include <thread>
#include <vector>

#include "objects.hpp"
#include "test_support.hpp"
#include "workload.hpp"

namespace {

using concur::lab::model::Faults;
using concur::lab::model::Heap;
using concur::lab::model::Object;
using concur::lab::model::RefcountMode;
using concur::testing::kStressScale;
namespace model = concur::lab::model;

TEST(LabModel, AFreedObjectIsPoisonedAndItsUseIsCounted) {
  for (RefcountMode mode : {RefcountMode::plain, RefcountMode::atomic, RefcountMode::biased}) {
    Faults faults;
    Heap heap(mode, &faults);
    Object* o = heap.make(7);
    model::incref(o);
    EXPECT_EQ(model::refcount(o), 2);
    EXPECT_FALSE(model::decref(o, &faults));
    EXPECT_TRUE(model::use(o, &faults));
    EXPECT_TRUE(model::decref(o, &faults)) << model::to_string(mode);
    EXPECT_FALSE(model::use(o, &faults));
    EXPECT_EQ(faults.use_after_free.load(), 1);
    EXPECT_EQ(faults.frees.load(), 1);
  }
}

TEST(LabModel, AtomicAndBiasedCountsStayExactAcrossThreads) {
  for (RefcountMode mode : {RefcountMode::atomic, RefcountMode::biased}) {
    Faults faults;
    Heap heap(mode, &faults);
    std::vector<Object*> objects;
    for (int i = 0; i < 8; ++i) objects.push_back(heap.make(i));
    const int rounds = 100'000 / kStressScale;
    auto churn = [&] {
      for (int r = 0; r < rounds; ++r) {
        Object* o = objects[static_cast<std::size_t>(r) % objects.size()];
        model::incref(o);
        model::use(o, &faults);
        model::decref(o, &faults);
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) threads.emplace_back(churn);
    churn();  // the owner (this thread) counts too
    for (auto& t : threads) t.join();
    EXPECT_EQ(faults.use_after_free.load(), 0) << model::to_string(mode);
    for (Object* o : objects) {
      EXPECT_EQ(model::refcount(o), 1) << model::to_string(mode);
      EXPECT_TRUE(model::decref(o, &faults));
    }
    EXPECT_EQ(faults.frees.load(), 8);
    EXPECT_EQ(faults.double_free.load(), 0);
  }
}

TEST(LabModel, BiasedObjectOutlivesItsOwnersReferenceWhileOthersHoldOne) {
  Faults faults;
  Heap heap(RefcountMode::biased, &faults);
  Object* o = heap.make(1);
  std::thread other([&] { model::incref(o); });
  other.join();
  EXPECT_FALSE(model::decref(o, &faults));  // the owner merges; another reference remains
  EXPECT_TRUE(model::use(o, &faults));
  std::thread last([&] { EXPECT_TRUE(model::decref(o, &faults)); });
  last.join();
  EXPECT_FALSE(model::use(o, &faults));
  EXPECT_EQ(faults.frees.load(), 1);
}

TEST(LabModel, PlainCountsUnderTheLockStayExact) {
  concur::InterpreterLock gil({.switch_interval = std::chrono::microseconds(50)});
  Faults faults;
  Heap heap(RefcountMode::plain, &faults);
  Object* o = heap.make(1);
  const int rounds = 50'000 / kStressScale;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      concur::GilGuard hold(gil);
      for (int r = 0; r < rounds; ++r) {
        model::incref(o);
        gil.checkpoint();
        model::use(o, &faults);
        model::decref(o, &faults);
        gil.checkpoint();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(model::refcount(o), 1);
  EXPECT_EQ(faults.use_after_free.load(), 0);
}

TEST(LabModel, CountBoxedComputesTheSumWithOrWithoutTheLock) {
  EXPECT_EQ(model::count_boxed(1000, nullptr), 1000L * 999 / 2);
  concur::InterpreterLock gil;
  concur::GilGuard hold(gil);
  EXPECT_EQ(model::count_boxed(1000, &gil), 1000L * 999 / 2);
}

}  // namespace
