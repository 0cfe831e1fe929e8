package notification

// Leading is how many instances of this process consume the feed.
func Leading() int { return int(leading.Load()) }
