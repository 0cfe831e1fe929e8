package chat

import (
	"bytes"
	"encoding/binary"

	"github.com/google/uuid"
)

// nextID is a message id for a conversation whose highest id so far is
// last (uuid.Nil for none): a new UUIDv7, or, when this clock is behind the
// one that made last (another instance's), the UUIDv7 right after last.
// Sends hold the conversation's lock while they take an id and commit, so
// within a conversation ids are given, and become visible, in increasing
// order: a reader who has seen a message has seen every earlier one, and
// paging "after" never skips a message committed late.
func nextID(last uuid.UUID) uuid.UUID {
	id := newID()
	if bytes.Compare(id[:], last[:]) > 0 {
		return id
	}
	return successor(last)
}

// successor is the UUIDv7 right after u: its random bits plus one, carried
// into the sub-millisecond bits and then the millisecond, keeping the
// version and variant bits.
func successor(u uuid.UUID) uuid.UUID {
	const randB = 1<<62 - 1 // bytes 8-15 below the two variant bits
	b := binary.BigEndian.Uint64(u[8:])
	if b&randB != randB {
		binary.BigEndian.PutUint64(u[8:], b+1)
		return u
	}
	binary.BigEndian.PutUint64(u[8:], b&^randB)
	a := binary.BigEndian.Uint16(u[6:8]) // version nibble, then 12 bits
	if a&0x0fff != 0x0fff {
		binary.BigEndian.PutUint16(u[6:8], a+1)
		return u
	}
	binary.BigEndian.PutUint16(u[6:8], a&^0x0fff)
	var ms [8]byte
	copy(ms[2:], u[:6])
	binary.BigEndian.PutUint64(ms[:], binary.BigEndian.Uint64(ms[:])+1)
	copy(u[:6], ms[2:])
	return u
}
