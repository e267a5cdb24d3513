package config

import (
	"flag"
	"fmt"
)

// AuthFlags are etcd's auth flags (and YAML keys).
type AuthFlags struct {
	Token      string // --auth-token: "simple" or "jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…"
	TokenTTL   uint   // --auth-token-ttl: seconds a simple token lives after its last use
	BcryptCost uint   // --bcrypt-cost: cost of the bcrypt hashes of passwords
}

// Defaults, etcd's.
const (
	DefaultAuthToken    = "simple"
	DefaultAuthTokenTTL = 300
	DefaultBcryptCost   = 10 // bcrypt.DefaultCost
	maxBcryptCost       = 31 // bcrypt.MaxCost
	minBcryptCost       = 4  // bcrypt.MinCost
)

func defaultAuthFlags() AuthFlags {
	return AuthFlags{Token: DefaultAuthToken, TokenTTL: DefaultAuthTokenTTL, BcryptCost: DefaultBcryptCost}
}

func addAuthFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Auth.Token, "auth-token", c.Auth.Token, "Specify auth token specific options.")
	fs.UintVar(&c.Auth.BcryptCost, "bcrypt-cost", c.Auth.BcryptCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	fs.UintVar(&c.Auth.TokenTTL, "auth-token-ttl", c.Auth.TokenTTL, "The lifetime in seconds of the auth token.")
}

// validate checks the bcrypt cost as bcrypt does (etcd refuses such a cost when
// it starts its auth store).
func (a AuthFlags) validate() error {
	if a.BcryptCost < minBcryptCost || a.BcryptCost > maxBcryptCost {
		return fmt.Errorf("invalid bcrypt-cost %d: must be between %d and %d", a.BcryptCost, minBcryptCost, maxBcryptCost)
	}
	return nil
}
