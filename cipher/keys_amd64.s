//go:build !purego

#include "textflag.h"

// AES-256 key expansion (FIPS-197 §5.2) with AESKEYGENASSIST. Round keys 2i and
// 2i+1 are derived from round keys 2i-2 and 2i-1:
//
//	w = RotWord(SubWord(last word of key 2i-1)) ^ rcon      (AESKEYGENASSIST, word 3)
//	key 2i   = prefix-XOR of the words of key 2i-2, each word ^ w
//	w = SubWord(last word of key 2i)                        (AESKEYGENASSIST, word 2)
//	key 2i+1 = prefix-XOR of the words of key 2i-1, each word ^ w
//
// X1 holds the even key, X3 the odd key, X2 and X4 are scratch. The schedule
// layout is described in keys_amd64.go.

// PREFIXXOR sets each 32-bit word of k to the XOR of it and the words below it.
#define PREFIXXOR(k) \
	MOVO   k, X4     \
	PSLLDQ $4, X4    \
	PXOR   X4, k     \
	PSLLDQ $4, X4    \
	PXOR   X4, k     \
	PSLLDQ $4, X4    \
	PXOR   X4, k

// EVEN computes the next even round key into X1 and stores it at off(DI).
#define EVEN(rcon, off)             \
	AESKEYGENASSIST $rcon, X3, X2 \
	PSHUFD $0xff, X2, X2          \
	PREFIXXOR(X1)                 \
	PXOR   X2, X1                 \
	MOVOU  X1, off(DI)

// ODD computes the next odd round key into X3 and stores it at off(DI).
#define ODD(off)                    \
	AESKEYGENASSIST $0x00, X1, X2 \
	PSHUFD $0xaa, X2, X2          \
	PREFIXXOR(X3)                 \
	PXOR   X2, X3                 \
	MOVOU  X3, off(DI)

// EXPAND256 writes the 15 encryption round keys of the 32-byte key at (SI) to (DI).
#define EXPAND256   \
	MOVOU 0(SI), X1  \
	MOVOU 16(SI), X3 \
	MOVOU X1, 0(DI)  \
	MOVOU X3, 16(DI) \
	EVEN(0x01, 32)   \
	ODD(48)          \
	EVEN(0x02, 64)   \
	ODD(80)          \
	EVEN(0x04, 96)   \
	ODD(112)         \
	EVEN(0x08, 128)  \
	ODD(144)         \
	EVEN(0x10, 160)  \
	ODD(176)         \
	EVEN(0x20, 192)  \
	ODD(208)         \
	EVEN(0x40, 224)

// INVMIX stores AESIMC of encryption round key i as decryption round key 14-i.
#define INVMIX(i)              \
	AESIMC (i*16)(DI), X1   \
	MOVOU  X1, (240+(14-i)*16)(DI)

// func expandKey(ks *schedule, key *[KeySize]byte)
TEXT ·expandKey(SB), NOSPLIT, $0-16
	MOVQ ks+0(FP), DI
	MOVQ key+8(FP), SI

	// Data key: encryption round keys at 0(DI).
	EXPAND256

	// Data key: decryption round keys at 240(DI), for the equivalent inverse
	// cipher (FIPS-197 §5.3.5) that AESDEC implements.
	MOVOU 224(DI), X1
	MOVOU X1, 240(DI)
	INVMIX(1)
	INVMIX(2)
	INVMIX(3)
	INVMIX(4)
	INVMIX(5)
	INVMIX(6)
	INVMIX(7)
	INVMIX(8)
	INVMIX(9)
	INVMIX(10)
	INVMIX(11)
	INVMIX(12)
	INVMIX(13)
	MOVOU 0(DI), X1
	MOVOU X1, 464(DI)

	// Tweak key: encryption round keys at 480(DI).
	ADDQ $32, SI
	ADDQ $480, DI
	EXPAND256

	// Leave no key material in registers.
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X4, X4
	RET
