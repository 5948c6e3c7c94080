// Narrow-float conversions and type tables.
#include <gtest/gtest.h>

#include <cmath>

#include "anvil/error.h"
#include "ir/dtype.h"
#include "ir/shape.h"

using namespace anvil::ir;

TEST(DType, HalfRoundTripsAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = halfToFloat(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(floatToHalf(f), h) << h;
  }
}

TEST(DType, HalfRoundsToNearestEven) {
  EXPECT_EQ(floatToHalf(1.0f + 1.0f / 2048), floatToHalf(1.0f));  // tie -> even
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);                        // rounds to inf
  EXPECT_EQ(halfToFloat(floatToHalf(5.96046448e-08f)), 5.96046448e-08f);  // smallest subnormal
}

TEST(DType, BFloat16) {
  EXPECT_EQ(bfloat16ToFloat(floatToBFloat16(1.0f)), 1.0f);
  EXPECT_EQ(floatToBFloat16(1.00390625f), floatToBFloat16(1.0f));  // tie -> even
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBFloat16(NAN))));
}

TEST(DType, Float8RoundTripsAllCodes) {
  for (DataType t : {DataType::kF8E4M3FN, DataType::kF8E4M3FNUZ, DataType::kF8E5M2, DataType::kF8E5M2FNUZ}) {
    for (int c = 0; c < 256; ++c) {
      float f = f8ToFloat(uint8_t(c), t);
      if (std::isnan(f) || std::isinf(f)) continue;
      uint8_t back = floatToF8(f, t, false);
      EXPECT_EQ(f8ToFloat(back, t), f) << dtypeName(t) << " code " << c;
    }
  }
  EXPECT_EQ(f8ToFloat(floatToF8(1000.0f, DataType::kF8E4M3FN, true), DataType::kF8E4M3FN), 448.0f);
  EXPECT_TRUE(std::isnan(f8ToFloat(floatToF8(1000.0f, DataType::kF8E4M3FN, false), DataType::kF8E4M3FN)));
  EXPECT_TRUE(std::isinf(f8ToFloat(floatToF8(1e6f, DataType::kF8E5M2, false), DataType::kF8E5M2)));
}

TEST(DType, Names) {
  EXPECT_STREQ(dtypeName(DataType::kBF16), "bf16");
  EXPECT_EQ(dtypeFromName("i64"), DataType::kI64);
  EXPECT_EQ(storageBytes(DataType::kI4, 5), 3u);
}

TEST(Shape, BroadcastKeepsSymbols) {
  Shape a({Dim::symbol("N"), Dim(3), Dim(1)});
  Shape b({Dim(4)});
  EXPECT_EQ(broadcastShapes(a, b).str(), "[N,3,4]");
  EXPECT_EQ(broadcastShapes(Shape({Dim::symbol("N")}), Shape({Dim::symbol("M")})).str(), "[?]");
  EXPECT_THROW(broadcastShapes(Shape{2, 3}, Shape{4}), anvil::Error);
}

TEST(Shape, AdmitsConcreteExtents) {
  Shape s({Dim::symbol("N"), Dim(3), Dim()});
  EXPECT_TRUE(s.admits({5, 3, 7}));
  EXPECT_FALSE(s.admits({5, 4, 7}));
  EXPECT_FALSE(s.admits({5, 3}));
  EXPECT_TRUE(Shape::unknownRank().admits({1, 2, 3}));
  EXPECT_TRUE(Shape().admits({}));
}
