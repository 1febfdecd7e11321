package sdk

// A relay the sender re-sent after a resume comes with "retry":true when the server could not
// tell whether it had relayed the first attempt (the node that accepted it restarted or died
// and its memory of relay ids with it). Only the receiver knows: it remembers the ids of the
// last relays from each peer and drops a retry it already has.

// maxSeenIDs is how many relay ids are remembered per sender: more than a sender sends again
// (maxRecent acked ones, then those it had not seen acked).
const maxSeenIDs = 512

// seenIDs is one sender's last relay ids, oldest overwritten first.
type seenIDs struct {
	ids  []string
	next int
}

func (s *seenIDs) has(id string) bool {
	for _, x := range s.ids {
		if x == id {
			return true
		}
	}
	return false
}

func (s *seenIDs) add(id string) {
	if len(s.ids) < maxSeenIDs {
		s.ids = append(s.ids, id)
		return
	}
	s.ids[s.next] = id
	s.next = (s.next + 1) % maxSeenIDs
}

// duplicateRelay records the id of relay f and reports whether f is a retry of a relay
// already received. readLoop only.
func (c *Client) duplicateRelay(f *serverFrame) bool {
	if len(f.ID) == 0 || f.From == "" {
		return false
	}
	id := string(f.ID)
	s := c.seen[f.From]
	if s == nil {
		if c.seen == nil {
			c.seen = make(map[string]*seenIDs)
		}
		s = &seenIDs{}
		c.seen[f.From] = s
	}
	if f.Retry && s.has(id) {
		return true
	}
	s.add(id)
	return false
}

// forgetSeen drops what was remembered of peer id's relays (it left).
func (c *Client) forgetSeen(id string) { delete(c.seen, id) }
