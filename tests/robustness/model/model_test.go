package model

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func TestPutThenGetIsLinearizable(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, Input{Type: Put, Key: 1, Value: "a"}, Output{Rev: 2}),
		op(1, 11, 20, Input{Type: Get, Key: 1}, Output{Rev: 2, KVs: []KeyKV{{Key: 1, KV: KV{Value: "a", ModRev: 2, CreateRev: 2, Version: 1}}}}),
		op(1, 21, 30, Input{Type: Range}, Output{Rev: 2, KVs: []KeyKV{{Key: 1, KV: KV{Value: "a", ModRev: 2, CreateRev: 2, Version: 1}}}}),
	}
	if !porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("a read after an acknowledged put that returns it must be linearizable")
	}
}

func TestStaleReadIsNotLinearizable(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, Input{Type: Put, Key: 1, Value: "a"}, Output{Rev: 2}),
		op(1, 11, 20, Input{Type: Get, Key: 1}, Output{Rev: 1}),
	}
	if porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("a read that misses a put acknowledged before it started must not be linearizable")
	}
}

func TestWrongRevisionIsNotLinearizable(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, Input{Type: Put, Key: 1, Value: "a"}, Output{Rev: 2}),
		op(0, 11, 20, Input{Type: Put, Key: 2, Value: "b"}, Output{Rev: 2}),
	}
	if porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("two writes cannot share a revision")
	}
}

func TestAmbiguousPutMayOrMayNotApply(t *testing.T) {
	for _, seen := range []bool{true, false} {
		read := Output{Rev: 1}
		if seen {
			read = Output{Rev: 2, KVs: []KeyKV{{Key: 3, KV: KV{Value: "x", ModRev: 2, CreateRev: 2, Version: 1}}}}
		}
		h := []porcupine.Operation{
			op(0, 0, math.MaxInt64, Input{Type: Put, Key: 3, Value: "x"}, Output{Unknown: true}),
			op(1, 5, 20, Input{Type: Get, Key: 3}, read),
		}
		if !porcupine.CheckOperations(Porcupine, h) {
			t.Fatalf("ambiguous put, read seen=%v: must be linearizable", seen)
		}
	}
}

func TestTxnCompareAndSet(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, Input{Type: Put, Key: 0, Value: "a"}, Output{Rev: 2}),
		op(0, 11, 20, Input{Type: Txn, Key: 0, ExpectModRev: 2, Value: "b"}, Output{Rev: 3, Succeeded: true}),
		op(0, 21, 30, Input{Type: Txn, Key: 0, ExpectModRev: 2, Value: "c"},
			Output{Rev: 3, KVs: []KeyKV{{Key: 0, KV: KV{Value: "b", ModRev: 3, CreateRev: 2, Version: 2}}}}),
	}
	if !porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("CAS on the current mod_revision succeeds and a stale one fails")
	}
	h[2].Output = Output{Rev: 4, Succeeded: true}
	if porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("CAS on a stale mod_revision must not succeed")
	}
}

func TestLeaseRevokeDeletesItsKeys(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, Input{Type: LeaseGrant, Lease: 7}, Output{}),
		op(0, 11, 20, Input{Type: Put, Key: 4, Value: "l", Lease: 7}, Output{Rev: 2}),
		op(0, 21, 30, Input{Type: Put, Key: 5, Value: "m", Lease: 7}, Output{Rev: 3}),
		op(0, 31, 40, Input{Type: LeaseRevoke, Lease: 7}, Output{}),
		op(0, 41, 50, Input{Type: Range}, Output{Rev: 4}),
		op(0, 51, 60, Input{Type: Put, Key: 4, Value: "n", Lease: 7}, Output{Err: ErrLeaseNotFound}),
	}
	if !porcupine.CheckOperations(Porcupine, h) {
		t.Fatal("revoke deletes both keys in one revision; later puts with the lease fail")
	}
}

func TestKeyIndexRoundTrip(t *testing.T) {
	for i := 0; i < NumKeys; i++ {
		if KeyIndex(KeyName(i)) != i {
			t.Fatalf("KeyIndex(KeyName(%d)) = %d", i, KeyIndex(KeyName(i)))
		}
	}
	if KeyIndex("/other/key01") != -1 || KeyIndex(KeyPrefix+"key99") != -1 {
		t.Fatal("keys outside the key space must map to -1")
	}
}
