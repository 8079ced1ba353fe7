package mongotenant

// A list is a doubly linked list of *T, through the listLinks each T
// embeds: a client's member tenants, and the fair gate's queues in arrival
// order (its callers holding no lease, its kept slots). Pushing and
// removing cost O(1) and allocate nothing. A T is in at most one list at a
// time.
//
// A list is not safe for concurrent use: its owner's lock guards it.
type list[T any, P linked[T]] struct{ head, tail *T }

// listLinks are a list element's neighbours; nil at the ends and outside
// a list.
type listLinks[T any] struct{ prev, next *T }

func (l *listLinks[T]) links() *listLinks[T] { return l }

// linked is the constraint on a list's *T: it embeds listLinks[T].
type linked[T any] interface {
	*T
	links() *listLinks[T]
}

func (l *list[T, P]) pushBack(x *T) {
	lx := P(x).links()
	lx.prev = l.tail
	if l.tail != nil {
		P(l.tail).links().next = x
	} else {
		l.head = x
	}
	l.tail = x
}

func (l *list[T, P]) remove(x *T) {
	lx := P(x).links()
	if lx.prev != nil {
		P(lx.prev).links().next = lx.next
	} else {
		l.head = lx.next
	}
	if lx.next != nil {
		P(lx.next).links().prev = lx.prev
	} else {
		l.tail = lx.prev
	}
	*lx = listLinks[T]{}
}
