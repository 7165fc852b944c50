"""What the webhook tells the outside about itself: metrics, Events and logs."""
